"""When to answer (debounce). People often write three short messages in a row; each
message schedules its task `debounce` seconds after it arrived, and a task whose contact
has written again since then steps aside for the newer message's task, which answers the
whole pending batch. Only a quiet contact is answered, once.

The wait is a Celery countdown of a few seconds, capped far below the broker's visibility
timeout. Nothing is lost if a task is: the reconciler (whatsapp.tasks) re-drives every
inbound message still unanswered after ~30 s, and the same rule picks one task to answer.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q

from whatsapp import pipeline
from whatsapp.models import Direction, Message, Status

MAX_DEBOUNCE_SECONDS = 60.0


def debounce_seconds(tenant) -> float:
    value = tenant.debounce_seconds if tenant.debounce_seconds is not None else settings.BOT_DEBOUNCE_SECONDS
    return min(max(0.0, float(value)), MAX_DEBOUNCE_SECONDS)


def schedule_reply(message) -> bool:
    """Called by the webhook after the inbound message is committed: the reply task runs
    when the debounce has passed. False when the broker is down (the reconciler answers)."""
    delay = debounce_seconds(message.tenant)
    return pipeline.enqueue_reply(message.pk, countdown=delay if delay > 0 else None)


def newer_pending(inbound: Message) -> Message | None:
    """The contact's newest message that still waits for an answer, if it came after
    `inbound`: its own task will answer both."""
    return (
        Message.objects.filter(
            tenant_id=inbound.tenant_id, contact_id=inbound.contact_id, direction=Direction.INBOUND,
            status=Status.RECEIVED,
        )
        .filter(Q(created_at__gt=inbound.created_at) | Q(created_at=inbound.created_at, pk__gt=inbound.pk))
        .order_by("-created_at", "-pk")
        .first()
    )


def newer_in_batch(inbound: Message, batch: list[Message]) -> Message | None:
    """newer_pending(inbound), read from the contact's pending batch (oldest first, as
    bots.tasks.pending_batch reads it) instead of asking the database again."""
    newest = batch[-1] if batch else None
    if newest is not None and (newest.created_at, newest.pk) > (inbound.created_at, inbound.pk):
        return newest
    return None
