"""Celery configuration: queues, routes and the settings that make tasks survive a
SIGKILLed worker or a Redis restart. Values come from Django settings (the environment)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from kombu import Queue

broker_url = settings.REDIS_URL
result_backend = None  # Results live in the database (Message, DeliveryAttempt), not Redis.
task_ignore_result = True

# JSON only: no pickle, so a broker message can never execute code.
task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"
timezone = "UTC"

task_default_queue = "default"
task_queues = [
    Queue("default"),
    Queue("ai"),  # bots: building answers (LLM calls can take seconds)
    Queue("send"),  # provider calls
    # The default shard's lifecycle queue, reserved for the one worker that owns its
    # sidecar. Shard s has the queue `baileys.s` (declared when used, not listed here):
    # lifecycle tasks about a tenant are sent to its shard's queue by name
    # (whatsapp.sessions.shards.enqueue_lifecycle); the routes below are the default shard's.
    Queue("baileys"),
]
# Task names are FROZEN: every task carries an explicit name= (its original dotted
# path), because that name is the wire format of tasks already queued in Redis. Routes
# match these names, never module paths, so moving a module can not re-route a task.
# A new task gets a new name here; an old name is never changed.
# tests/unit/test_task_names.py holds the list.
task_routes = {
    "bots.tasks.generate_reply": {"queue": "ai"},
    "bots.tasks.answer_trial": {"queue": "ai"},
    "whatsapp.tasks.send_message": {"queue": "send"},
    # Fetching and transcribing media comes before the answer: the same queue as the bot.
    "whatsapp.media.process_media": {"queue": "ai"},
    "whatsapp.tasks.reconcile_outbound": {"queue": "default"},
    "whatsapp.tasks.purge_expired": {"queue": "default"},
    # A shard's owner runs its sidecar, so it also collects what the sidecar kept (it
    # schedules this itself, on its shard's queue: whatsapp.sessions.supervisor.Ticker).
    "whatsapp.tasks.collect_rejected_inbound": {"queue": "baileys"},
    "whatsapp.lifecycle.start": {"queue": "baileys"},
    "whatsapp.lifecycle.stop": {"queue": "baileys"},
    "whatsapp.lifecycle.logout": {"queue": "baileys"},
    "whatsapp.lifecycle.restart": {"queue": "baileys"},
    "whatsapp.lifecycle.simulate_scan": {"queue": "baileys"},
    "whatsapp.lifecycle.health_check": {"queue": "baileys"},
    "whatsapp.lifecycle.check_session": {"queue": "baileys"},
    "whatsapp.lifecycle.move": {"queue": "baileys"},
    "whatsapp.inbox.resume_idle": {"queue": "default"},
}
# Not found by autodiscovery (which imports only <app>.tasks); also connects the signals
# by which a lifecycle worker takes its shard's lease and runs the sidecar.
imports = ["whatsapp.sessions.lifecycle", "whatsapp.media.tasks", "whatsapp.inbox.tasks"]

# Ack after the task finishes, not when it starts: a worker that dies mid-task leaves
# the message on the broker to be redelivered (every task is idempotent for this).
task_acks_late = True
# A worker process killed by a signal (SIGKILL, OOM) rejects its task back to the queue.
task_reject_on_worker_lost = True
# Reserve one task at a time, so a dying worker holds at most one unacked message.
worker_prefetch_multiplier = 1
# On a lost broker connection, cancel running late-ack tasks instead of letting them be
# delivered again while they still run (a double send).
worker_cancel_long_running_tasks_on_connection_loss = True
broker_connection_retry_on_startup = True
broker_transport_options = {
    # An unacked task (also one waiting on a countdown) is redelivered after this; every
    # retry countdown is capped well below it (see whatsapp.outbound.delivery.backoff_countdown).
    "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT,
    # A Redis that does not answer (dropped packets, a half-open connection) would hold a
    # publish, and with it the webhook that stored the message, until gunicorn kills the
    # worker. Bounded, the publish fails in seconds, the webhook still answers (the message
    # is stored) and the reconciler publishes later. kombu passes these to redis-py;
    # broker_connection_timeout is not used by the Redis transport.
    "socket_connect_timeout": settings.CELERY_BROKER_CONNECT_TIMEOUT,
    "socket_timeout": settings.CELERY_BROKER_SOCKET_TIMEOUT,
}

# Bound every task: provider and LLM calls have their own timeouts below these.
task_soft_time_limit = 120
task_time_limit = 150

# Celery's Django fixup closes the database connection around every task unless this is
# set, and then closes it every this many tasks. Whether a connection may outlive its
# task is decided in project/worker_db.py (an idle, error-free connection only; Django's
# CONN_MAX_AGE, and a poll of the idle socket instead of SELECT 1, before the next task):
# a new PostgreSQL connection per task cost about 3 ms and a forked backend, twice per
# customer message.
CELERY_DB_REUSE_MAX = 1000

# Keep Django's LOGGING (structured lines with tenant and correlation id, masked numbers).
worker_hijack_root_logger = False

# Events for Flower: the workers' (received, started, succeeded, failed, retried).
worker_send_task_events = True
# Not the publisher's "task-sent": it is a second Redis round trip (a PUBLISH after the
# LPUSH) in every publish, half of what the webhook's enqueue cost (issue 16,
# scripts/bench/publish.py). Flower shows a task from "received" on; a task still waiting
# is counted in the queue lengths (Flower's Broker page, /api/queues/length).
task_send_sent_event = False

task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER

beat_schedule = {
    "reconcile-outbound": {
        "task": "whatsapp.tasks.reconcile_outbound",
        "schedule": timedelta(seconds=settings.RECONCILE_INTERVAL_SECONDS),
    },
    # No session health check or refused-inbound collection here: each shard's owner
    # schedules its own on its shard's queue (whatsapp.sessions.supervisor.Ticker), so
    # beat needs no list of shards and a standby that takes over starts at once.
    "retention-purge": {
        "task": "whatsapp.tasks.purge_expired",
        "schedule": timedelta(seconds=settings.RETENTION_INTERVAL_SECONDS),
        # One run at a time is enough: a late one is dropped, the next one catches up.
        "options": {"expires": settings.RETENTION_INTERVAL_SECONDS},
    },
    "inbox-resume-idle": {
        "task": "whatsapp.inbox.resume_idle",
        "schedule": timedelta(seconds=settings.INBOX_RESUME_INTERVAL_SECONDS),
        "options": {"expires": settings.INBOX_RESUME_INTERVAL_SECONDS},
    },
}
