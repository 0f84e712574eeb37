"""Celery tasks of the whatsapp app. Each takes only a row id: the database holds the
state, so a redelivered or duplicated task is harmless."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from whatsapp import delivery
from whatsapp.models import Direction, Message, Status

log = logging.getLogger("whatsapp.tasks")


@shared_task(bind=True, max_retries=None, acks_late=True)
def send_message(self, message_id: int) -> None:
    decision = delivery.deliver(message_id)
    if decision.retry_in is not None:
        # Celery's own retry; the policy counts attempts in the database. A countdown
        # longer than the broker's visibility timeout would be delivered twice, so a long
        # wait (a far pacing slot, a Retry-After) is left to the database: the message
        # keeps its next_attempt_at and the reconciler re-drives it when it is due.
        if decision.retry_in <= settings.CELERY_VISIBILITY_TIMEOUT / 4:
            raise self.retry(countdown=decision.retry_in)


@shared_task(acks_late=True)
def reconcile_outbound() -> dict:
    """The database is the source of truth: re-drive every outbound message whose task
    was lost (a SIGKILLed worker, a flushed or restarted Redis) and every inbound message
    that has not got an answer yet; one still unanswered past its deadline
    (INBOUND_ANSWER_DEADLINE_SECONDS) becomes a dead letter that staff see. Duplicated tasks are harmless (claims are conditional), and
    each message is re-driven at most once per grace period, so a backlog is not
    multiplied by the reconciler."""
    from bots.tasks import generate_reply
    from whatsapp.inbound_dead_letters import answer_deadline, close_answered_meanwhile, file_unanswered

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
        "sending": _redrive(stuck_sending, send_message, now),
        "queued": _redrive(overdue_queued, send_message, now),
        "inbound": _redrive(unanswered, generate_reply, now),
        "inbound_dead_letters": file_unanswered(now),
        "inbound_dead_letters_closed": close_answered_meanwhile(),
    }
    if any(counts.values()):
        log.warning("reconciler re-drove messages: %s", counts)
    return counts


def _redrive(queryset, task, now, limit: int = 500) -> int:
    # A queue that already holds a batch is being worked: its tasks are not lost, only
    # behind. Re-driving into it again every grace period would add a copy of the whole
    # backlog each time, and the workers, busy with copies, fall further behind (seen in
    # the soak after a Redis restart on a loaded machine). Wait until it is short.
    backlog = _queued(task)
    if backlog is not None and backlog >= limit:
        log.warning("reconciler waits: %s tasks already queued for %s", backlog, task.name)
        return 0
    ids = list(queryset.order_by("created_at").values_list("pk", flat=True)[:limit])
    Message.objects.filter(pk__in=ids).update(redriven_at=now)
    for pk in ids:
        task.delay(pk)
    return len(ids)


def _queued(task) -> int | None:
    """How many messages wait in the broker queue `task` is routed to (None: unknown)."""
    app = task.app
    queue = app.amqp.router.route({}, task.name)["queue"].name
    try:
        with app.connection_for_write() as conn:
            return conn.default_channel.queue_declare(queue, passive=True).message_count
    except Exception:  # noqa: BLE001 - the broker is unreachable: publishing fails on its own
        return None


@shared_task(acks_late=True)
def purge_expired() -> dict:
    """Retention (whatsapp.retention): delete what is older than each tenant's window, in
    small batches within a bounded time; idempotent, so a redelivered run is harmless."""
    from whatsapp.retention import purge

    return purge()


@shared_task(acks_late=True)
def collect_rejected_inbound() -> dict:
    """File the inbound messages Django refused and the sidecar kept as dead letters
    (whatsapp.rejected_inbound). A sidecar that is down is tried again next time."""
    from whatsapp.rejected_inbound import RejectedInboxUnavailable, collect

    try:
        counts = collect()
    except RejectedInboxUnavailable as exc:
        log.info("refused inbound messages not collected this time: %s", exc)
        return {}
    if any(counts.values()):
        log.warning("collected refused inbound messages: %s", counts)
    return counts
