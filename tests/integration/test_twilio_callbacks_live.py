"""End to end with a real Celery worker, a live Django server and the fake Twilio posting
its signed status callbacks to it, as Twilio would: a failure receipt after acceptance,
a late "delivered", and a lost answer while Twilio holds the message queued."""

from __future__ import annotations

import pytest

from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for
from whatsapp.models import DeadLetter, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PATH = "/webhooks/twilio/acme/"
PHONE = "+15551234567"


@pytest.fixture
def public(live_server, settings):
    """Twilio calls (and signs) our public URL: here, the live server."""
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server.url


def customer_writes(client, public: str):
    return post_twilio(client, PATH, twilio_form(Body="hello"), signed_url=public + PATH)


def reply() -> Message | None:
    return Message.objects.filter(direction=Direction.OUTBOUND).first()


def test_an_undelivered_63024_callback_after_acceptance_dead_letters_the_reply_with_the_reason(
        client, tenant, twilio, public, start_worker):
    twilio.faults.receipt_failures = {PHONE: ["undelivered", 63024]}
    start_worker(PUBLIC_BASE_URL=public)
    assert customer_writes(client, public).status_code == 200

    letter = wait_for(lambda: DeadLetter.objects.filter(resolved_at__isnull=True).first(), 30,
                      message="the dead letter after the undelivered callback")
    assert letter.reason == DeadLetter.Reason.UNDELIVERED
    assert "63024" in letter.last_error and "invalid message recipient" in letter.last_error
    assert reply().status == Status.DEAD
    assert len(twilio.sent_to(PHONE)) == 1, "Twilio, the failed provider, is not tried again"


def test_a_delivered_callback_that_comes_late_still_applies(client, tenant, twilio, public, start_worker):
    twilio.faults.callback_delay_seconds = 3
    start_worker(PUBLIC_BASE_URL=public)
    assert customer_writes(client, public).status_code == 200
    wait_for(lambda: reply() and reply().status == Status.SENT, 20, message="the reply to be sent")
    wait_for(lambda: reply().status == Status.DELIVERED, 20, message="the late delivered callback")
    assert reply().delivered_at is not None
    assert len(twilio.sent_to(PHONE)) == 1


def test_a_lost_answer_while_the_message_is_held_queued_is_settled_by_its_callback_and_sent_once(
        client, tenant, twilio, public, start_worker):
    twilio.faults.accept_then_hang_next = 1  # stored, then the answer never comes
    twilio.faults.hang_seconds = 20
    twilio.faults.queued_seconds = 4
    start_worker(PUBLIC_BASE_URL=public, TWILIO_READ_TIMEOUT=2)
    assert customer_writes(client, public).status_code == 200

    wait_for(lambda: reply() and reply().status == Status.DELIVERED, 40, message="the reply to be delivered")
    message = reply()
    sent = twilio.sent_to(PHONE)
    assert len(sent) == 1
    assert message.provider_message_id == sent[0]["sid"]
    assert list(message.attempts.values_list("outcome", flat=True)) == ["accepted"]
