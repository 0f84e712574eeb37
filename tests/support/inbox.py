"""Helpers for the inbox tests: a customer writing through the signed Twilio webhook, and
finding what they wrote."""

from __future__ import annotations

from tests.support.twilio_webhooks import post_twilio, twilio_form
from whatsapp.models import Direction, Message

PATH = "/webhooks/twilio/acme/"
PHONE = "+15551234567"


def customer_writes(client, body: str) -> None:
    assert post_twilio(client, PATH, twilio_form(Body=body)).status_code == 200


def inbound(body: str) -> Message:
    return Message.objects.get(direction=Direction.INBOUND, body=body)
