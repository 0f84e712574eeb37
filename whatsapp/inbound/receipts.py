"""Delivery receipts (Twilio status callbacks, sidecar acks). A status never moves
backwards. A receipt that carries a part's key settles that part's pending attempt (the
provider has it, so it is never sent again). A failure after the provider accepted the
reply fails over to the next provider or dead-letters it (whatsapp.outbound.delivery); a failure
after the customer already had it (delivered/read) is only recorded."""

from __future__ import annotations

import logging

from django.utils import timezone

from whatsapp.models import DeadLetter, DeliveryAttempt, Message, Outcome, Status
from whatsapp.outbound import delivery
from whatsapp.outbound.answer_parts import parse_part_key
from whatsapp.outbound.providers.twilio import ERROR_MEANINGS

log = logging.getLogger("whatsapp.receipts")

PROVIDER_STATUS = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "failed": Status.FAILED,
    "undelivered": Status.UNDELIVERED,
}
CONFIRMS_DELIVERY = {Status.SENT, Status.DELIVERED, Status.READ}
FAILURES = {Status.FAILED, Status.UNDELIVERED}
# Statuses that prove the provider holds the message (Twilio: queued onwards; a scheduled
# or canceled message would not, and we never schedule).
HELD_BY_PROVIDER = {"accepted", "queued", "sending", "sent", "delivered", "read", "server_ack"}
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


def key_part(message: Message, idempotency_key: str) -> int | None:
    """The part index in a part's key (answer_parts.part_key), if the key belongs to the
    message's current key generation: a receipt for a part of an earlier cycle does not
    settle an attempt of this one."""
    parsed = parse_part_key(idempotency_key)
    return parsed[1] if parsed and parsed[0] == message.key_generation else None


def failure_reason(provider: str, provider_status: str, error_code: str) -> str:
    meaning = ERROR_MEANINGS.get(str(error_code), "") if provider == "twilio" else ""
    code = f" {error_code}" if error_code else ""
    return f"{provider}{code}: {meaning or provider_status} (reported after the provider had accepted the reply)"


def settle_pending_attempt(message: Message, provider: str, provider_message_id: str, part: int | None,
                           provider_status: str, error_code: str = "") -> bool:
    """The part's attempt is pending (the worker died, or the provider's answer was lost):
    a receipt for it proves the provider has the message. Conditional UPDATE, so the
    worker that holds the claim and this receipt cannot both write an outcome."""
    failed = PROVIDER_STATUS.get(provider_status) in FAILURES
    if part is None or not provider_message_id or not (failed or provider_status in HELD_BY_PROVIDER):
        return False
    if DeliveryAttempt.objects.filter(provider=provider, provider_message_id=provider_message_id).exists():
        return False  # already known as some attempt's message
    pending = (
        DeliveryAttempt.objects.filter(message=message, provider=provider, part=part,
                                       key_generation=message.key_generation,
                                       outcome__in=[Outcome.STARTED, Outcome.AMBIGUOUS])
        .order_by("-started_at").values_list("pk", flat=True).first()
    )
    if pending is None:
        return False
    settled = DeliveryAttempt.objects.filter(pk=pending, outcome__in=[Outcome.STARTED, Outcome.AMBIGUOUS]).update(
        outcome=Outcome.FAILED if failed else Outcome.ACCEPTED, provider_message_id=provider_message_id,
        error=failure_reason(provider, provider_status, error_code) if failed
        else f"settled by a {provider_status} receipt", error_code=str(error_code or "")[:20],
    )
    if settled:
        log.info("pending attempt settled by a %s receipt", provider_status,
                 extra={"message_id": message.pk, "provider": provider, "part": part})
    return bool(settled)


def apply_receipt(message: Message, provider_status: str, error_code: str = "", provider: str = "",
                  provider_message_id: str = "", idempotency_key: str = "") -> bool:
    """Move the message forward if that is a move forward; return whether it moved."""
    provider_status = (provider_status or "").lower()
    new_status = PROVIDER_STATUS.get(provider_status)
    if new_status in FAILURES and message.status in (Status.SENT, Status.QUEUED, Status.SENDING):
        # Accepted, then failed: fail over or dead-letter (recorded only while a worker holds it).
        reason = failure_reason(provider, provider_status, error_code)
        handled = delivery.fail_after_acceptance(message, provider, provider_message_id,
                                                 key_part(message, idempotency_key), str(error_code or ""), reason)
        if handled is not None:
            return handled
        if DeliveryAttempt.objects.filter(provider=provider, provider_message_id=provider_message_id,
                                          outcome=Outcome.FAILED).exists():
            return False  # a repeat of a failure already failed over: the reply went out another way
    if message.status in (Status.QUEUED, Status.SENDING):
        # The sending worker owns the message (more parts may follow). A receipt only
        # settles the attempt of its own part, which the worker then takes as accepted.
        return settle_pending_attempt(message, provider, provider_message_id, key_part(message, idempotency_key),
                                      provider_status, error_code)
    if new_status is None:
        return False  # queued/accepted/sending: nothing we do not already know
    fields = {}
    if new_status in TIMESTAMP_FIELD:
        fields[TIMESTAMP_FIELD[new_status]] = timezone.now()
    if error_code:
        fields["error_code"] = str(error_code)[:20]
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
