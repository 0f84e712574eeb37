"""Delivery receipts (Twilio status callbacks, sidecar acks). A status never moves
backwards; a late "failed" after "sent" is recorded, not re-sent."""

from __future__ import annotations

import logging

from django.utils import timezone

from whatsapp.models import DeadLetter, DeliveryAttempt, Message, Status

log = logging.getLogger("whatsapp.receipts")

PROVIDER_STATUS = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "failed": Status.FAILED,
    "undelivered": Status.UNDELIVERED,
}
CONFIRMS_DELIVERY = {Status.SENT, Status.DELIVERED, Status.READ}
TIMESTAMP_FIELD = {Status.SENT: "sent_at", Status.DELIVERED: "delivered_at", Status.READ: "read_at"}


def find_outbound(provider: str, provider_message_id: str, idempotency_key: str = "") -> Message | None:
    message = Message.objects.filter(provider=provider, provider_message_id=provider_message_id).first()
    if message is None and provider_message_id:
        attempt = DeliveryAttempt.objects.filter(provider=provider, provider_message_id=provider_message_id).first()
        message = attempt.message if attempt else None
    if message is None and idempotency_key:
        key = idempotency_key.split(":", 1)[0]
        try:
            message = Message.objects.filter(idempotency_key=key).first()
        except Exception:  # noqa: BLE001 - not a UUID
            message = None
    return message


def apply_receipt(message: Message, provider_status: str, error_code: str = "", provider: str = "",
                  provider_message_id: str = "") -> bool:
    """Move the message forward if that is a move forward; return whether it moved."""
    new_status = PROVIDER_STATUS.get((provider_status or "").lower())
    if new_status is None:
        return False  # queued/accepted/sending: nothing we do not already know
    fields = {}
    if new_status in TIMESTAMP_FIELD:
        fields[TIMESTAMP_FIELD[new_status]] = timezone.now()
    if error_code:
        fields["error_code"] = str(error_code)[:20]
    if message.status in (Status.QUEUED, Status.SENDING):
        # The sending worker owns the message (more parts may follow); it learns the
        # outcome itself, from the provider's answer or by asking.
        return False
    was_dead = message.status == Status.DEAD
    if was_dead and new_status not in CONFIRMS_DELIVERY:
        return False
    if was_dead and provider_message_id and not message.provider_message_id:
        fields.update(provider=provider, provider_message_id=provider_message_id)
    moved = message.move_to(new_status, **fields)
    if moved and was_dead:
        _confirm_dead_letters(message)
    log.info(
        "receipt %s %s",
        provider_status,
        "applied" if moved else f"ignored (message is {message.status})",
        extra={"message_id": message.pk, "tenant": message.tenant_id},
    )
    return moved


def _confirm_dead_letters(message: Message) -> None:
    """The reply was dead-lettered because nobody could tell whether it had left; the
    provider now says it did. Close the dead letter so nobody requeues a second copy."""
    updated = DeadLetter.objects.filter(message=message, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolution=DeadLetter.Resolution.CONFIRMED,
        note="A delivery receipt arrived: the customer got this reply.",
    )
    if updated:
        log.warning("dead letter closed: a receipt shows the reply was delivered", extra={"message_id": message.pk})
