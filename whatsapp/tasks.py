"""Celery tasks of the whatsapp app. Each takes only a row id: the database holds the
state, so a redelivered or duplicated task is harmless."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from whatsapp import delivery
from whatsapp.models import Direction, Message, Status

log = logging.getLogger("whatsapp.tasks")


@shared_task(bind=True, max_retries=None, acks_late=True)
def send_message(self, message_id: int) -> None:
    decision = delivery.deliver(message_id)
    if decision.retry_in is not None:
        # Celery's own retry; the policy counts attempts in the database and keeps the
        # countdown below the broker's visibility timeout.
        raise self.retry(countdown=decision.retry_in)


@shared_task(acks_late=True)
def reconcile_outbound() -> dict:
    """The database is the source of truth: re-drive every outbound message whose task
    was lost (a SIGKILLed worker, a flushed or restarted Redis) and every inbound message
    that never got an answer. Duplicated tasks are harmless (claims are conditional)."""
    now = timezone.now()
    grace = timedelta(seconds=settings.RECONCILE_GRACE_SECONDS)
    stuck_sending = Message.objects.filter(
        direction=Direction.OUTBOUND, status=Status.SENDING, lease_until__lt=now
    ).values_list("pk", flat=True)
    overdue_queued = Message.objects.filter(
        direction=Direction.OUTBOUND, status=Status.QUEUED, updated_at__lt=now - grace
    ).filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=now - grace)).values_list("pk", flat=True)
    unanswered = Message.objects.filter(
        direction=Direction.INBOUND, status=Status.RECEIVED, created_at__lt=now - grace,
        created_at__gt=now - timedelta(days=1),
    ).values_list("pk", flat=True)

    from bots.tasks import generate_reply

    counts = {"sending": 0, "queued": 0, "inbound": 0}
    for pk in list(stuck_sending[:500]):
        send_message.delay(pk)
        counts["sending"] += 1
    for pk in list(overdue_queued[:500]):
        send_message.delay(pk)
        counts["queued"] += 1
    for pk in list(unanswered[:500]):
        generate_reply.delay(pk)
        counts["inbound"] += 1
    if any(counts.values()):
        log.warning("reconciler re-drove messages: %s", counts)
    return counts
