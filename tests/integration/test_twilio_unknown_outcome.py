"""A Twilio send whose answer was lost is resolved without a second copy: the lookup
finds a message Twilio still holds as queued, is not fooled by a few minutes of clock
skew or by another reply's template, and a status callback that carries the part's key
settles the attempt. Real delivery policy, real twilio client, the faithful fake."""

from __future__ import annotations

import pytest

from tests.support.delivery import drive, make_reply, outcomes
from tests.support.twilio_webhooks import post_twilio
from whatsapp.models import DeliveryAttempt, Message, Status
from whatsapp.outbound import delivery

pytestmark = pytest.mark.django_db

PHONE = "+15551234567"
TEMPLATE = "HX" + "1" * 32


@pytest.fixture(autouse=True)
def fast_policy(settings, redis_server):
    settings.TWILIO_READ_TIMEOUT = 1
    settings.SEND_RETRY_MAX = 3


def lose_the_answer_to_the_next_create(twilio, queued_seconds: float = 60) -> None:
    """Twilio stores the message and keeps it queued; its answer never reaches us."""
    twilio.faults.accept_then_hang_next = 1
    twilio.faults.hang_seconds = 2
    twilio.faults.queued_seconds = queued_seconds


def test_a_lost_answer_while_twilio_holds_the_message_queued_is_not_sent_twice(tenant, twilio):
    lose_the_answer_to_the_next_create(twilio)
    message = drive(make_reply(tenant))
    sent = twilio.sent_to(PHONE)
    assert len(sent) == 1, "the customer gets one copy"
    assert sent[0]["status"] == "queued"
    assert message.status == Status.SENT and message.provider_message_id == sent[0]["sid"]
    assert outcomes(message) == [("twilio", "accepted")]
    assert "resolved: it was sent" in message.attempts.get().error


@pytest.mark.parametrize("skew", [-180, 180], ids=["twilio-3-min-behind", "twilio-3-min-ahead"])
def test_three_minutes_of_clock_skew_with_twilio_still_finds_the_queued_message(tenant, twilio, skew):
    twilio.faults.clock_skew_seconds = skew
    lose_the_answer_to_the_next_create(twilio)
    message = drive(make_reply(tenant))
    assert len(twilio.sent_to(PHONE)) == 1
    assert message.status == Status.SENT and outcomes(message) == [("twilio", "accepted")]


def test_a_request_that_never_reached_twilio_is_sent_once_after_the_lookup(tenant, twilio):
    # An identical text sent earlier to the same customer is another reply's message.
    earlier = drive(make_reply(tenant, body="Thanks, we are open until 18:00."))
    twilio.faults.hang_next = 1
    twilio.faults.hang_seconds = 2
    later = drive(make_reply(tenant, body="Thanks, we are open until 18:00."))
    sent = twilio.sent_to(PHONE)
    assert len(sent) == 2, "one copy for each reply"
    assert {earlier.provider_message_id, later.provider_message_id} == {m["sid"] for m in sent}
    assert outcomes(later) == [("twilio", "transient"), ("twilio", "accepted")]


def test_a_template_lookup_does_not_take_another_reply_s_template_for_its_own(tenant, twilio):
    tenant.twilio_template_sid = TEMPLATE
    tenant.twilio_template_variables = {"1": "Acme Bakery"}
    tenant.save()
    first = drive(make_reply(tenant, window_open=False))
    assert first.status == Status.SENT and first.template_sid == TEMPLATE
    # The second reply's create hangs before Twilio stores anything.
    twilio.faults.hang_next = 1
    twilio.faults.hang_seconds = 2
    second = drive(make_reply(tenant, window_open=False))
    sent = twilio.sent_to(PHONE)
    assert [m["content_sid"] for m in sent] == [TEMPLATE, TEMPLATE], "the second customer reply was not lost"
    assert second.status == Status.SENT
    assert second.provider_message_id == sent[1]["sid"] != first.provider_message_id


def status_callback(client, message, sid: str, status: str, error_code: str = ""):
    """Twilio's callback for part 0 of `message`, to the URL we gave it (with the key)."""
    path = f"/webhooks/twilio/acme/status/?key={message.idempotency_key}:0"
    form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
    if error_code:
        form["ErrorCode"] = error_code
    return post_twilio(client, path, form)


def pending_send(tenant, outcome: str = "ambiguous") -> Message:
    """A reply whose only attempt has no known outcome (the answer was lost), released
    for a retry: what the worker leaves behind before it resolves the attempt."""
    message = make_reply(tenant)
    message.attempts.create(provider="twilio", outcome=outcome, part=0, error="no answer after sending")
    return message


def test_a_status_callback_with_the_key_settles_a_pending_attempt_so_nothing_is_resent(client, tenant, twilio,
                                                                                        settings):
    settings.TWILIO_LOOKUP_SCAN = 1  # the lookup alone could not tell: it reads too little
    twilio.faults.errors = [(400, 21211)]  # ... and nothing would be written to the fake
    message = pending_send(tenant)
    drive_sid = "SM" + "f" * 32
    assert status_callback(client, message, drive_sid, "queued").json()["applied"] is True
    assert message.attempts.get().outcome == "accepted"

    message = drive(message)
    assert message.status == Status.SENT and message.provider_message_id == drive_sid
    assert twilio.requests == 0, "Twilio was not asked to send it again"
    assert outcomes(message) == [("twilio", "accepted")]
    # Later callbacks for the same message move it on as usual.
    assert status_callback(client, message, drive_sid, "delivered").json()["status"] == "delivered"


def test_a_failure_callback_for_a_pending_attempt_is_not_taken_as_sent(client, tenant, twilio):
    message = pending_send(tenant)
    assert status_callback(client, message, "SM" + "e" * 32, "failed", "63003").json()["applied"] is True
    message = drive(message)
    assert message.status == Status.DEAD
    letter = message.dead_letters.get()
    assert letter.reason == "undelivered" and "63003" in letter.last_error
    assert twilio.requests == 0


def test_the_worker_s_own_outcome_does_not_overwrite_a_receipt_that_settled_the_attempt_first(tenant):
    message = make_reply(tenant)
    attempt = message.attempts.create(provider="twilio", outcome="started", part=0)
    DeliveryAttempt.objects.filter(pk=attempt.pk).update(outcome="accepted", provider_message_id="SMfromreceipt")
    # The worker's request then times out: it must keep the receipt's verdict.
    assert delivery._finish_attempt(attempt, 0.0, "ambiguous", "read timeout", "read_timeout") == "accepted"
    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.provider_message_id) == ("accepted", "SMfromreceipt")


def test_a_callback_with_a_key_cannot_settle_a_part_with_some_other_message_s_sid(client, tenant, twilio):
    other = drive(make_reply(tenant, phone="+15550001111"))
    message = pending_send(tenant)
    status_callback(client, message, other.provider_message_id, "delivered")
    assert message.attempts.get().outcome == "ambiguous", "the sid is the other reply's"
