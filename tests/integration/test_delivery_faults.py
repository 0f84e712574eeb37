"""Fault injection at the fake Twilio API, with the real delivery policy, the real twilio
client and real Redis breakers. Every scenario ends delivered exactly once, or as one
dead letter with its reason."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.delivery import drive, make_reply, outcomes
from tests.support.ports import free_port
from whatsapp.models import DeadLetter, DeliveryAttempt, Status
from whatsapp.outbound import delivery
from whatsapp.outbound.breakers import breaker_states, get_breaker

pytestmark = pytest.mark.django_db

PHONE = "+15551234567"


@pytest.fixture(autouse=True)
def fast_policy(settings, redis_server):
    settings.TWILIO_READ_TIMEOUT = 1
    settings.SEND_RETRY_MAX = 3
    settings.BREAKER_FAIL_MAX = 5
    settings.BREAKER_RESET_TIMEOUT = 1


def dead_letter(message) -> DeadLetter:
    return DeadLetter.objects.get(message=message)


def test_a_burst_of_5xx_is_retried_and_the_reply_delivered_once(tenant, twilio):
    twilio.faults.errors = [(503, 20503), (500, 20500)]
    message = drive(make_reply(tenant))
    assert message.status == Status.SENT
    assert outcomes(message) == [("twilio", "transient"), ("twilio", "transient"), ("twilio", "accepted")]
    assert len(twilio.sent_to(PHONE)) == 1


def test_connection_refused_is_retried_then_dead_lettered_when_exhausted(tenant, twilio, settings):
    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    message = drive(make_reply(tenant))
    assert message.status == Status.DEAD
    letter = dead_letter(message)
    assert letter.reason == DeadLetter.Reason.EXHAUSTED
    assert "refused" in letter.last_error
    assert letter.attempt_count == 3
    assert outcomes(message) == [("twilio", "transient")] * 3


def test_a_provider_that_hangs_once_is_asked_and_the_reply_sent_once(tenant, twilio):
    twilio.faults.hang_next = 1
    twilio.faults.hang_seconds = 3
    message = drive(make_reply(tenant))
    assert message.status == Status.SENT
    # The hung request was resolved as "not sent" by asking Twilio before sending again.
    assert outcomes(message) == [("twilio", "transient"), ("twilio", "accepted")]
    assert "resolved: it was not sent" in message.attempts.first().error
    assert len(twilio.sent_to(PHONE)) == 1


def test_a_timeout_after_the_provider_accepted_does_not_send_twice(tenant, twilio):
    twilio.faults.accept_then_hang_next = 1
    twilio.faults.hang_seconds = 3
    message = drive(make_reply(tenant))
    assert message.status == Status.SENT
    assert outcomes(message) == [("twilio", "accepted")]
    assert "resolved: it was sent" in message.attempts.get().error
    sent = twilio.sent_to(PHONE)
    assert len(sent) == 1
    assert message.provider_message_id == sent[0]["sid"]


def test_a_provider_that_stays_hung_dead_letters_rather_than_risk_a_duplicate(tenant, twilio, settings):
    settings.SEND_AMBIGUOUS_RESOLVE_SECONDS = 0
    twilio.faults.hang_all = True
    twilio.faults.hang_seconds = 2
    message = drive(make_reply(tenant))
    assert message.status == Status.DEAD
    assert dead_letter(message).reason == DeadLetter.Reason.AMBIGUOUS
    assert twilio.sent_to(PHONE) == []


def test_an_invalid_number_is_dead_lettered_at_once_without_retrying(tenant, twilio):
    twilio.faults.invalid_numbers = {PHONE}
    message = drive(make_reply(tenant))
    assert message.status == Status.DEAD
    letter = dead_letter(message)
    assert letter.reason == DeadLetter.Reason.PERMANENT
    assert "21211" in letter.last_error
    assert outcomes(message) == [("twilio", "permanent")]


def test_outside_the_24_hour_window_the_configured_template_is_sent(tenant, twilio):
    tenant.twilio_template_sid = "HX" + "1" * 32
    tenant.twilio_template_variables = {"1": "Acme Bakery"}
    tenant.save()
    message = drive(make_reply(tenant, window_open=False))
    assert message.status == Status.SENT
    assert message.template_sid == tenant.twilio_template_sid
    sent = twilio.sent_to(PHONE)
    assert len(sent) == 1
    assert sent[0]["content_sid"] == tenant.twilio_template_sid
    assert sent[0]["posted_body"] == ""


def test_outside_the_window_without_a_template_it_dead_letters_with_that_reason(tenant, twilio):
    message = drive(make_reply(tenant, window_open=False))
    assert message.status == Status.DEAD
    assert dead_letter(message).reason == DeadLetter.Reason.NO_TEMPLATE
    assert twilio.requests == 0


def test_twilio_window_error_63016_switches_to_the_template(tenant, twilio):
    tenant.twilio_template_sid = "HX" + "2" * 32
    tenant.save()
    twilio.faults.window_closed = {PHONE}
    message = drive(make_reply(tenant))
    assert message.status == Status.SENT
    assert outcomes(message) == [("twilio", "permanent"), ("twilio", "accepted")]
    assert [m["content_sid"] for m in twilio.sent_to(PHONE)] == [tenant.twilio_template_sid]


def test_a_long_answer_is_split_at_word_boundaries_and_sent_in_order(tenant, twilio):
    words = [f"word{i}" for i in range(700)]  # about 5,500 characters
    message = drive(make_reply(tenant, body=" ".join(words)))
    assert message.status == Status.SENT
    bodies = [m["body"] for m in twilio.sent_to(PHONE)]
    assert len(bodies) == 4
    assert all(len(b) <= 1600 for b in bodies)
    assert " ".join(bodies).split() == words


def reply_whose_twilio_breaker_opened(tenant, twilio, settings):
    """A reply whose two Twilio 503s (BREAKER_FAIL_MAX = 2) opened Twilio's breaker."""
    settings.SEND_RETRY_MAX = 10
    twilio.faults.errors = [(503, 20503), (503, 20503)]
    message = make_reply(tenant)
    for _ in range(2):
        assert delivery.deliver(message.pk).retry_in is not None
        type(message).objects.filter(pk=message.pk).update(next_attempt_at=None)
    assert [b["state"] for b in breaker_states()] == ["open"]
    return message


def test_the_breaker_opens_skips_the_provider_without_a_call_and_recovers(tenant, twilio, settings):
    settings.BREAKER_FAIL_MAX = 2
    # Long enough that the breaker is still open at the third call on a loaded machine.
    settings.BREAKER_RESET_TIMEOUT = 3
    message = reply_whose_twilio_breaker_opened(tenant, twilio, settings)

    calls_before = twilio.requests
    decision = delivery.deliver(message.pk)
    assert decision.retry_in is not None and decision.retry_in <= settings.BREAKER_RESET_TIMEOUT + 1
    assert twilio.requests == calls_before, "an open breaker must not call the provider"
    assert outcomes(message)[-1] == ("twilio", "skipped")

    time.sleep(settings.BREAKER_RESET_TIMEOUT + 0.1)
    message = drive(message)
    assert message.status == Status.SENT
    assert [b["state"] for b in breaker_states()] == ["closed"]
    assert len(twilio.sent_to(PHONE)) == 1



def test_a_worker_killed_during_the_breakers_trial_call_does_not_shut_the_provider_out_for_good(
        tenant, twilio, settings):
    """pybreaker writes "half-open" to Redis as the trial call starts; a worker SIGKILLed
    during that call never writes the result, and its probe lock expires. Seen in the soak:
    the WhatsApp session was skipped for the rest of the run, and replies that Twilio had
    failed waited forever."""
    settings.BREAKER_FAIL_MAX = 2
    message = reply_whose_twilio_breaker_opened(tenant, twilio, settings)

    # What the killed worker left behind: the state it wrote, and no probe lock.
    get_breaker(tenant.slug, "twilio").half_open()
    assert [b["state"] for b in breaker_states()] == ["half-open"]

    message = drive(message)
    assert message.status == Status.SENT
    assert len(twilio.sent_to(PHONE)) == 1
    assert [b["state"] for b in breaker_states()] == ["closed"]

@pytest.fixture
def dead_sidecar(tenant, settings):
    """The tenant sends through its WhatsApp Web session first, and nothing listens there."""
    settings.SIDECAR_URL = f"http://127.0.0.1:{free_port()}"
    settings.BREAKER_FAIL_MAX = 2
    tenant.baileys_enabled = True
    tenant.save()


def test_a_dead_sidecar_fails_over_to_twilio(tenant, twilio, dead_sidecar):
    message = drive(make_reply(tenant))
    assert message.status == Status.SENT
    assert message.provider == "twilio"
    # Nothing could have been sent: the reply moves on at once, no retry on the dead sidecar.
    assert outcomes(message) == [("baileys", "skipped"), ("twilio", "accepted")]
    assert message.attempts.first().error_code == "sidecar_down"
    assert len(twilio.sent_to(PHONE)) == 1


def test_a_sidecar_that_keeps_failing_opens_its_breaker_and_is_not_asked_again(tenant, twilio, dead_sidecar,
                                                                                 settings):
    # Still open at the third reply on a loaded machine (1 s let it half-open: a trial call).
    settings.BREAKER_RESET_TIMEOUT = 30
    for phone in ("+15550000001", "+15550000002", "+15550000003"):
        drive(make_reply(tenant, phone=phone))
    third = DeliveryAttempt.objects.filter(provider="baileys").order_by("started_at").last()
    assert third.error_code == "breaker_open"
    assert [b["state"] for b in breaker_states() if b["provider"] == "baileys"] == ["open"]


def test_a_past_deadline_dead_letters_the_reply(tenant, twilio):
    message = make_reply(tenant)
    type(message).objects.filter(pk=message.pk).update(deadline_at=message.created_at)
    message = drive(message)
    assert message.status == Status.DEAD
    assert dead_letter(message).reason == DeadLetter.Reason.DEADLINE
    assert twilio.requests == 0


def test_two_claims_on_one_message_cannot_both_win(tenant):
    message = make_reply(tenant)
    assert delivery.claim(message.pk) is not None
    assert delivery.claim(message.pk) is None


def test_a_wait_longer_than_the_visibility_timeout_is_kept_in_the_database(tenant, settings, redis_server):
    """A countdown past the broker's visibility timeout would be delivered twice; such a
    wait is left to next_attempt_at, and the reconciler re-drives the message when due."""
    from datetime import timedelta

    from django.utils import timezone

    from whatsapp.tasks import reconcile_outbound

    settings.RECONCILE_GRACE_SECONDS = 5
    message = make_reply(tenant)
    later = timezone.now() + timedelta(hours=3)
    type(message).objects.filter(pk=message.pk).update(next_attempt_at=later, updated_at=timezone.now())
    assert reconcile_outbound()["queued"] == 0, "not due yet"

    type(message).objects.filter(pk=message.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=10), updated_at=timezone.now() - timedelta(seconds=10)
    )
    assert reconcile_outbound()["queued"] == 1
    assert redis_server.client().llen("send") == 1


def test_a_first_send_reads_its_attempts_once_before_writing_one(tenant, twilio):
    # Issue 16: a reply with no attempt yet has none to adopt, resolve, count or avoid:
    # one read finds that out, instead of four.
    message = make_reply(tenant)
    with CaptureQueriesContext(connection) as captured:
        delivery.deliver(message.pk)
    statements = [query["sql"] for query in captured.captured_queries]
    first_write = next(i for i, sql in enumerate(statements) if sql.startswith('INSERT INTO "whatsapp_deliveryattempt"'))
    assert len([sql for sql in statements[:first_write] if '"whatsapp_deliveryattempt"' in sql]) == 1
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert len(twilio.sent_to(PHONE)) == 1
