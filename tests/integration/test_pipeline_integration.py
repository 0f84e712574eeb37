"""End to end on real parts: a signed Twilio webhook into real Django, a real Celery
worker on a real Redis, the bot, and the reply arriving at the fake Twilio API through
the real twilio client."""

from __future__ import annotations

import pytest

from bots.models import Rule
from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for
from whatsapp.models import DeliveryAttempt, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PATH = "/webhooks/twilio/acme/"


def test_a_customer_message_is_answered_through_twilio(client, tenant, twilio, start_worker):
    Rule.objects.create(tenant=tenant, pattern="hours, open", answer="We are open 8-18, Sunday to Friday.")
    start_worker()

    response = post_twilio(client, PATH, twilio_form(Body="What are your opening hours?"))
    assert response.status_code == 200

    sent = wait_for(lambda: twilio.sent_to("+15551234567"), 20, message="the reply at Twilio")
    assert sent[0]["body"] == "We are open 8-18, Sunday to Friday."
    assert sent[0]["from"] == "whatsapp:+14155238886"

    reply = wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).first(), 10)
    assert reply.provider == "twilio"
    assert reply.provider_message_id == sent[0]["sid"]
    assert reply.in_reply_to.body == "What are your opening hours?"
    assert reply.in_reply_to.status == Status.ANSWERED
    attempt = DeliveryAttempt.objects.get(message=reply)
    assert attempt.outcome == "accepted" and attempt.provider == "twilio"


def test_the_same_webhook_twice_gives_one_reply(client, tenant, twilio, start_worker):
    start_worker()
    form = twilio_form(Body="hello")
    assert post_twilio(client, PATH, form).status_code == 200
    assert post_twilio(client, PATH, form).status_code == 200

    wait_for(lambda: twilio.sent_to("+15551234567"), 20, message="the reply")
    # Give a duplicate every chance to show up.
    wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).exists(), 10)
    import time

    time.sleep(1.5)
    assert len(twilio.sent_to("+15551234567")) == 1
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 1
