"""Helpers for delivery tests: a stored reply waiting to be sent, and a driver that runs
the real delivery policy the way the send task does, without sleeping through countdowns."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from whatsapp.models import Contact, Direction, Message, Status
from whatsapp.outbound import delivery


def make_reply(tenant, body: str = "Thanks, we are open until 18:00.", phone: str = "+15551234567",
               window_open: bool = True) -> Message:
    last_inbound = timezone.now() - (timedelta(minutes=5) if window_open else timedelta(hours=25))
    contact, _ = Contact.objects.get_or_create(tenant=tenant, phone=phone)
    contact.last_twilio_inbound_at = last_inbound
    contact.save()
    inbound = Message.objects.create(
        tenant=tenant, contact=contact, direction=Direction.INBOUND, status=Status.ANSWERED, body="When do you close?",
        provider="twilio", provider_message_id="SM" + timezone.now().strftime("%H%M%S%f"),
    )
    return Message.objects.new_outbound(
        tenant=tenant, contact=contact, body=body, in_reply_to=inbound
    )


def drive(message: Message, max_rounds: int = 30) -> Message:
    """Run the delivery policy until it stops asking for a retry; each retry is made due
    at once instead of waiting for its countdown."""
    for _ in range(max_rounds):
        decision = delivery.deliver(message.pk)
        if decision.retry_in is None:
            message.refresh_from_db()
            return message
        assert decision.retry_in < 3600, "a countdown must stay below the visibility timeout"
        Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    raise AssertionError(f"delivery did not settle in {max_rounds} rounds")


def outcomes(message: Message) -> list[tuple[str, str]]:
    return list(message.attempts.order_by("started_at", "pk").values_list("provider", "outcome"))
