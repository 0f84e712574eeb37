"""Inbound dead letters: a customer's message that nobody answered in time, or one the
webhook refused and the sidecar kept. Staff see what the customer said and why it was not
answered; they answer it now (the bot runs again) or discard it.

Filing is idempotent: an unanswered message gets at most one open dead letter (and no new
one while its last "answer now" is younger than the deadline); a refused item is unique
on the sidecar's id, so collecting it twice files it once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from whatsapp import pipeline
from whatsapp.inbound.store import accept_inbound
from whatsapp.inbound.views import WebhookError, sidecar_inbound
from whatsapp.models import DeadLetter, Direction, Message, Status, Tenant

log = logging.getLogger("whatsapp.dead_letters")

REFUSAL_REASON = {
    413: DeadLetter.Reason.TOO_LARGE,
    401: DeadLetter.Reason.BAD_SIGNATURE,
    403: DeadLetter.Reason.BAD_SIGNATURE,
    404: DeadLetter.Reason.UNKNOWN_TENANT,
}


def answer_deadline() -> timedelta:
    return timedelta(seconds=settings.INBOUND_ANSWER_DEADLINE_SECONDS)


def file_unanswered(now=None, limit: int = 200) -> int:
    """Every inbound message still unanswered past its deadline becomes a dead letter."""
    now = now or timezone.now()
    deadline = answer_deadline()
    recent_letter = DeadLetter.objects.filter(message=OuterRef("pk")).filter(
        Q(resolved_at__isnull=True) | Q(resolved_at__gt=now - deadline)
    )
    overdue = (
        Message.objects.filter(direction=Direction.INBOUND, status=Status.RECEIVED, created_at__lt=now - deadline)
        .filter(~Exists(recent_letter))
        .order_by("created_at")[:limit]
    )
    filed = 0
    for message in overdue:
        why = (
            f"no answer within {_duration(deadline)}: the reply task never finished (is an `ai` worker "
            f"running? does the bot fail for this message? correlation id {message.correlation_id} in the logs)"
        )
        try:
            with transaction.atomic():
                DeadLetter.objects.create(
                    kind=DeadLetter.Kind.UNANSWERED, message=message, reason=DeadLetter.Reason.NOT_ANSWERED,
                    last_error=why,
                )
        except IntegrityError:
            continue  # filed meanwhile by another reconciler run
        filed += 1
        log.error("inbound dead letter: not answered in time", extra={"message_id": message.pk})
    return filed


def close_answered_meanwhile() -> int:
    """A message filed as unanswered that the bot answered after all (a worker came back)
    needs nobody any more: close its dead letter."""
    return DeadLetter.objects.filter(
        kind=DeadLetter.Kind.UNANSWERED, resolved_at__isnull=True, message__status=Status.ANSWERED
    ).update(resolved_at=timezone.now(), resolution=DeadLetter.Resolution.ANSWERED,
             note="The bot answered it after all.")


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


@transaction.atomic
def answer_now(dead_letter: DeadLetter, user=None, note: str = "") -> bool:
    """Run the bot again for an unanswered message. Safe to click twice."""
    dl = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
    if dl.resolved_at is not None or dl.kind != DeadLetter.Kind.UNANSWERED:
        return False
    _resolve(dl, user, DeadLetter.Resolution.ANSWERED, note)
    message_id = dl.message_id
    if Message.objects.filter(pk=message_id, status=Status.RECEIVED).exists():
        pipeline.enqueue_reply_on_commit(message_id)
    return True


def file_refused(item: dict) -> DeadLetter | None:
    """File one item the sidecar kept after Django refused it (see
    whatsapp.inbound.rejected). Returns the dead letter, or None for a receipt (dropped)."""
    source_id = str(item["id"])
    existing = DeadLetter.objects.filter(source_id=source_id).first()
    if existing:
        return existing
    http_status = int(item.get("httpStatus") or 0)
    payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
    error = f"HTTP {http_status}: {item.get('error') or 'refused'}"
    try:
        with transaction.atomic():
            return DeadLetter.objects.create(
                kind=DeadLetter.Kind.REFUSED,
                reason=REFUSAL_REASON.get(http_status, DeadLetter.Reason.REFUSED),
                last_error=error[:2000],
                tenant_slug=str(item.get("tenant") or "")[:63],
                payload=payload,
                source_id=source_id,
                created_at=_parse_time(item.get("rejectedAt")) or timezone.now(),
            )
    except IntegrityError:
        return DeadLetter.objects.get(source_id=source_id)  # filed by a concurrent run


def _parse_time(value):
    from django.utils.dateparse import parse_datetime

    try:
        return parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None


@transaction.atomic
def store_and_answer(dead_letter: DeadLetter, user=None, note: str = "") -> tuple[bool, str]:
    """Accept a refused message now through the webhook's own path (e.g. after staff
    fixed the tenant's slug): stored once, then answered by the bot."""
    dl = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
    if dl.resolved_at is not None or dl.kind != DeadLetter.Kind.REFUSED:
        return False, "Already resolved; nothing done."
    tenant = Tenant.objects.filter(slug=dl.tenant_slug).first()
    if tenant is None:
        return False, f"No tenant is called {dl.tenant_slug!r} now: fix the tenant's slug first, or discard."
    try:
        message, created = accept_inbound(sidecar_inbound(tenant, dl.payload))
    except WebhookError as exc:
        return False, f"The kept message is not a valid one ({exc.detail}); discard it."
    dl.message = message
    _resolve(dl, user, DeadLetter.Resolution.STORED, note, extra=["message"])
    return True, "Stored; the bot answers it now." if created else "It was stored already; nothing more done."


def _resolve(dl: DeadLetter, user, resolution: str, note: str, extra: list[str] | None = None) -> None:
    dl.resolved_at = timezone.now()
    dl.resolved_by = user
    dl.resolution = resolution
    dl.note = note or dl.note
    dl.save(update_fields=["resolved_at", "resolved_by", "resolution", "note", *(extra or [])])
