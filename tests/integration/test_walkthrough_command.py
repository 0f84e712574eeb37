"""`manage.py send_test_webhook`, the walkthrough a newcomer runs against `make run`: a
signed webhook to a real server (the test's live server), real ai/send workers, and the
reply reported from the database by its link to the message sent, whichever way it went."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from bots.models import Rule
from tests.support.waiting import wait_for
from whatsapp.models import Direction, Message, SessionState, Status
from whatsapp.sessions import lifecycle

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PHONE = "+15551234567"
HOURS = "We are open Sunday to Friday, 8:00-18:00."


@pytest.fixture
def hours_rule(tenant):
    Rule.objects.create(tenant=tenant, pattern="hours, open", answer=HOURS)
    return tenant


def walkthrough(server: str, *args: str) -> str:
    out = StringIO()
    call_command("send_test_webhook", "acme", "--server", server, "--from", PHONE, "--wait", "20", *args, stdout=out)
    return out.getvalue()


def test_the_walkthrough_shows_the_reply_to_its_message_and_why_it_took_the_debounce(
    hours_rule, twilio, start_worker, live_server
):
    hours_rule.debounce_seconds = 1.0
    hours_rule.save()
    start_worker()

    out = walkthrough(live_server.url, "--body", "What are your opening hours?")

    assert "webhook answered 200" in out
    assert "reply sent through Twilio" in out and repr(HOURS) in out
    assert "1 s of it is the debounce" in out
    seconds = float(out.split("sent through Twilio ")[1].split(" s after")[0])
    assert 1.0 <= seconds < 10
    assert [m["body"] for m in twilio.sent_to(PHONE)] == [HOURS]


def test_a_redelivered_message_sid_is_reported_as_a_duplicate_ignored_with_its_one_reply(
    hours_rule, twilio, start_worker, live_server
):
    start_worker()
    first = walkthrough(live_server.url, "--body", "hours?", "--message-sid", "SM" + "d" * 32)
    again = walkthrough(live_server.url, "--body", "hours?", "--message-sid", "SM" + "d" * 32)

    assert "duplicate" not in first
    assert "duplicate ignored, as expected" in again
    assert "its one reply, to the first delivery, sent through Twilio" in again
    assert len(twilio.sent_to(PHONE)) == 1
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 1


def test_a_reply_that_becomes_a_dead_letter_is_reported_with_its_reason_and_where_to_review_it(
    hours_rule, twilio, start_worker, live_server
):
    twilio.faults.invalid_numbers = {PHONE}
    start_worker()

    out = walkthrough(live_server.url, "--body", "hours?")

    assert "reply became a dead letter (Permanent provider error" in out
    assert "/admin/whatsapp/deadletter/" in out
    assert "no reply" not in out


def test_a_reply_through_the_whatsapp_web_session_is_reported_as_such(
    hours_rule, twilio, sandbox, lifecycle_worker, start_worker, live_server
):
    hours_rule.baileys_enabled = True
    hours_rule.save()
    lifecycle_worker()
    start_worker()
    lifecycle.start.delay("acme")
    wait_for(lambda: SessionState.objects.filter(tenant__slug="acme", can_send=True).exists(), 20,
             message="the session connected")

    out = walkthrough(live_server.url, "--body", "hours?")

    assert "reply sent through the WhatsApp Web session" in out and repr(HOURS) in out
    assert [s["text"] for s in sandbox.sent("acme")] == [HOURS]
    assert twilio.messages == []


def test_without_workers_the_walkthrough_says_the_message_waits_for_an_answer(hours_rule, twilio, live_server):
    out = StringIO()
    call_command("send_test_webhook", "acme", "--server", live_server.url, "--wait", "1", stdout=out)

    assert "no reply within 1 s: the message still waits for an answer (status received)" in out.getvalue()
    assert Message.objects.get(direction=Direction.INBOUND).status == Status.RECEIVED


def test_a_message_merged_into_a_burst_is_reported_with_the_bursts_one_reply(
    client, hours_rule, twilio, start_worker, live_server
):
    import threading

    from django.db import connection

    from tests.support.twilio_webhooks import post_twilio, twilio_form

    hours_rule.debounce_seconds = 2.0
    hours_rule.save()
    start_worker()
    outputs = []

    def run():
        try:
            outputs.append(walkthrough(live_server.url, "--body", "Hello!"))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: Message.objects.filter(direction=Direction.INBOUND).exists(), 10, message="the first message")
    # The customer writes again within the debounce: one reply answers both.
    assert post_twilio(client, "/webhooks/twilio/acme/", twilio_form(Body="What are your opening hours?")).status_code == 200
    thread.join(30)

    assert "reply (one for this message and the later ones of its burst) sent through Twilio" in outputs[0]
    sent = twilio.sent_to(PHONE)
    assert len(sent) == 1 and HOURS in sent[0]["body"]
    assert repr(sent[0]["body"]) in outputs[0]
