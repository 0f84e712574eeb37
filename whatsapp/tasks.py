"""Celery tasks of the whatsapp app that span its rooms (the reconciler, retention), and
the module Celery's autodiscovery imports: it imports the rooms' task modules too, so a
worker registers every task. Task names are frozen (celeryconfig.py). Each task takes
only a row id: the database holds the state, so a redelivered or duplicated task is
harmless."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from whatsapp import pipeline
from whatsapp.inbound.dead_letters import answer_deadline, close_answered_meanwhile, file_unanswered
from whatsapp.inbound.tasks import collect_rejected_inbound  # noqa: F401 - registers the task
from whatsapp.models import Direction, Message, Status
from whatsapp.outbound.tasks import send_message  # noqa: F401 - registers the task
from whatsapp.retention import purge

log = logging.getLogger("whatsapp.tasks")


@shared_task(name="whatsapp.tasks.reconcile_outbound", acks_late=True)
def reconcile_outbound() -> dict:
    """The database is the source of truth: re-drive every outbound message whose task
    was lost (a SIGKILLed worker, a flushed or restarted Redis) and every inbound message
    that has not got an answer yet; one still unanswered past its deadline
    (INBOUND_ANSWER_DEADLINE_SECONDS) becomes a dead letter that staff see. Duplicated tasks are harmless (claims are conditional), and
    each message is re-driven at most once per grace period, so a backlog is not
    multiplied by the reconciler."""
    now = timezone.now()
    grace = timedelta(seconds=settings.RECONCILE_GRACE_SECONDS)
    not_recently = Q(redriven_at__isnull=True) | Q(redriven_at__lt=now - grace)
    outbound = Message.objects.filter(direction=Direction.OUTBOUND).filter(not_recently)
    # A claim's lease is timed by the database's clock (delivery.claim): compare it there.
    stuck_sending = outbound.filter(status=Status.SENDING, lease_until__lt=Now())
    overdue_queued = outbound.filter(status=Status.QUEUED, updated_at__lt=now - grace).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=now - grace)
    )
    unanswered = Message.objects.filter(
        direction=Direction.INBOUND, status=Status.RECEIVED, created_at__lt=now - grace,
        created_at__gt=now - answer_deadline(),
    ).filter(not_recently)
    counts = {
        "sending": _redrive(stuck_sending, pipeline.SEND_TASK, now),
        "queued": _redrive(overdue_queued, pipeline.SEND_TASK, now),
        "inbound": _redrive(unanswered, pipeline.REPLY_TASK, now),
        "inbound_dead_letters": file_unanswered(now),
        "inbound_dead_letters_closed": close_answered_meanwhile(),
    }
    if any(counts.values()):
        log.warning("reconciler re-drove messages: %s", counts)
    return counts


def _redrive(queryset, task_name: str, now, limit: int = 500) -> int:
    # A queue that already holds a batch is being worked: its tasks are not lost, only
    # behind. Re-driving into it again every grace period would add a copy of the whole
    # backlog each time, and the workers, busy with copies, fall further behind (seen in
    # the soak after a Redis restart on a loaded machine). Wait until it is short.
    backlog = pipeline.queued(task_name)
    if backlog is not None and backlog >= limit:
        log.warning("reconciler waits: %s tasks already queued for %s", backlog, task_name)
        return 0
    ids = list(queryset.order_by("created_at").values_list("pk", flat=True)[:limit])
    Message.objects.filter(pk__in=ids).update(redriven_at=now)
    for pk in ids:
        pipeline.publish(task_name, pk)  # a broker still down fails this run; the next one retries
    return len(ids)


@shared_task(name="whatsapp.tasks.purge_expired", acks_late=True)
def purge_expired() -> dict:
    """Retention (whatsapp.retention): delete what is older than each tenant's window, in
    small batches within a bounded time; idempotent, so a redelivered run is harmless."""
    return purge()
