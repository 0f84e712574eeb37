"""The hand-off between the rooms: the one place that puts a message's next step on the
broker.

Tasks are published by their frozen NAME (celeryconfig.py routes by name), so the code
that enqueues a reply or a send does not import the task's module: inbound, bots and
outbound do not import each other in a circle.

The database is the source of truth and Redis only carries task ids: when the broker
cannot take a task, the message is already stored in the state that the reconciler
(whatsapp.tasks.reconcile_outbound) re-drives, so the failure is logged, not raised.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

log = logging.getLogger("whatsapp.pipeline")

REPLY_TASK = "bots.tasks.generate_reply"
SEND_TASK = "whatsapp.tasks.send_message"
MEDIA_TASK = "whatsapp.media.process_media"


def publish(task_name: str, message_id: int, countdown: float | None = None) -> None:
    """Put one task on the broker by name; raises when the broker is down (the
    reconciler, which re-drives in bulk, lets its own run fail then)."""
    current_app.send_task(task_name, (message_id,), countdown=countdown)


def publish_to(task_name: str, args: tuple, queue: str, countdown: float | None = None, **options) -> None:
    """Put one task on a queue chosen at run time (a shard's lifecycle queue), not by its
    static route; raises when the broker is down."""
    current_app.send_task(task_name, args, queue=queue, countdown=countdown, **options)


def enqueue_reply(message_id: int, countdown: float | None = None) -> bool:
    """Have the bot answer this inbound message (after `countdown` seconds, the debounce)."""
    return _enqueue(REPLY_TASK, message_id, countdown, "reply")


def enqueue_send(message_id: int) -> bool:
    """Have a send worker deliver this outbound message."""
    return _enqueue(SEND_TASK, message_id, None, "send")


def enqueue_media(message_id: int) -> bool:
    """Have the media task fetch (and transcribe) this inbound message's files; it hands
    the message to the bot when they are ready."""
    return _enqueue(MEDIA_TASK, message_id, None, "media fetch")


def enqueue_reply_on_commit(message_id: int) -> None:
    transaction.on_commit(lambda: enqueue_reply(message_id))


def enqueue_send_on_commit(message_id: int) -> None:
    transaction.on_commit(lambda: enqueue_send(message_id))


def queued(task_name: str) -> int | None:
    """How many tasks wait in the broker queue that `task_name` is routed to (None when
    the broker cannot tell: publishing fails on its own then)."""
    app = current_app
    queue = app.amqp.router.route({}, task_name)["queue"].name
    try:
        with app.connection_for_write() as conn:
            return conn.default_channel.queue_declare(queue, passive=True).message_count
    except Exception:  # noqa: BLE001 - an unreachable broker
        return None


def _enqueue(task_name: str, message_id: int, countdown: float | None, what: str) -> bool:
    try:
        publish(task_name, message_id, countdown)
    except Exception:  # noqa: BLE001 - any broker failure: the stored message is re-driven later
        log.exception("could not enqueue the %s; the reconciler will retry", what, extra={"message_id": message_id})
        return False
    return True
