"""The delivery rules (whatsapp.outbound.rules): pure, given what happened to a reply so
far and how its latest attempt failed, what the send task does next. The fault suite
(test_delivery_faults.py and its neighbours) runs the same rules through the real
executor, providers and breakers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from whatsapp.models import DeadLetter
from whatsapp.outbound import rules
from whatsapp.outbound.providers.base import ErrorKind
from whatsapp.outbound.rules import (
    AMBIGUOUS_RECHECK_SECONDS,
    CODE_BREAKER_OPEN,
    CODE_NO_TEMPLATE,
    CODE_UNDELIVERED,
    Dead,
    Done,
    Failover,
    Failure,
    History,
    Limits,
    Retry,
    backoff,
    first_step,
    next_step,
    retries_left,
)

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
LIMITS = Limits(retry_max=3, backoff_base=2, backoff_cap=300, visibility_timeout=3600, ambiguous_resolve_seconds=120)
BOTH = ("baileys", "twilio")


def at(provider: str, failures: int = 0, providers=BOTH, passed_over=(), attempts: int = 1) -> History:
    return History(providers=providers, provider=provider, failures={provider: failures}, passed_over=passed_over,
                   attempts=attempts, deadline=NOW + timedelta(minutes=30), limits=LIMITS)


def transient(retry_after=None) -> Failure:
    return Failure(ErrorKind.TRANSIENT, "Twilio 503 20503: Service unavailable", "20503", retry_after)


# Backoff


def test_backoff_grows_with_each_retry_and_never_exceeds_its_ceiling():
    random.seed(12)
    for retries in range(12):
        ceiling = min(2 * 2**retries, 300)
        draws = [backoff(retries, LIMITS) for _ in range(200)]
        assert all(0.5 <= d <= ceiling for d in draws), retries
        if ceiling > 8:
            # Full jitter spreads the retries over the whole interval, so a burst of
            # failures does not come back at the same instant.
            assert max(draws) > ceiling / 2 and min(draws) < ceiling / 2
    assert max(backoff(50, LIMITS) for _ in range(500)) <= 300


def test_backoff_stays_well_below_the_brokers_visibility_timeout():
    # A countdown longer than the visibility timeout would be delivered twice.
    short = Limits(backoff_cap=10_000, visibility_timeout=400)
    assert max(backoff(30, short) for _ in range(500)) <= 100


def test_a_transient_failure_is_retried_on_the_same_provider_with_backoff():
    random.seed(3)
    step = next_step(at("twilio", failures=1), transient(), NOW)
    assert isinstance(step, Retry)
    assert 0.5 <= step.after <= 4  # base 2 x 2^1
    assert step.error.startswith("Twilio 503")


def test_a_providers_retry_after_is_honoured_instead_of_the_backoff():
    assert next_step(at("twilio"), transient(retry_after=42.0), NOW) == Retry(42.0, transient().error)


# Per provider


def test_the_last_transient_failure_allowed_moves_on_to_the_next_provider():
    step = next_step(at("baileys", failures=2), transient(), NOW)  # the third of three
    assert step == Failover("exhausted", transient().error)
    assert retries_left(at("baileys", failures=3)) == 0
    assert retries_left(at("baileys", failures=1)) == 2


def test_a_permanent_refusal_fails_over_at_once_without_a_retry():
    refused = Failure(ErrorKind.PERMANENT, "Twilio 400 21211: invalid To", "21211")
    assert next_step(at("baileys"), refused, NOW) == Failover("permanent", refused.error)


@pytest.mark.parametrize("code, reason", [(CODE_NO_TEMPLATE, "no_template"), (CODE_UNDELIVERED, "undelivered")])
def test_no_template_and_a_failure_receipt_fail_over_with_their_own_reason(code, reason):
    failure = Failure(ErrorKind.PERMANENT, "why", code)
    assert next_step(at("baileys"), failure, NOW) == Failover(reason, "why")


def test_an_unknown_outcome_is_asked_again_soon_and_never_sent_through_another_provider():
    unknown = Failure(ErrorKind.AMBIGUOUS, "sidecar did not answer", "read_timeout")
    assert next_step(at("baileys"), unknown, NOW) == Retry(AMBIGUOUS_RECHECK_SECONDS, unknown.error)


def test_an_unknown_outcome_left_by_an_earlier_run_is_dead_lettered_once_too_old_to_tell():
    def left(age: float) -> Failure:
        return Failure(ErrorKind.AMBIGUOUS, "twilio may have sent part 0; check before requeueing",
                       pending_since=NOW - timedelta(seconds=age))

    assert next_step(at("twilio"), left(60), NOW) == Retry(AMBIGUOUS_RECHECK_SECONDS, "resolving")
    assert next_step(at("twilio"), left(121), NOW) == Dead("ambiguous", left(121).error)


def test_a_paced_send_waits_for_its_slot_whatever_the_retries_so_far():
    paced = Failure(ErrorKind.PACED, "paced: the next send slot is in 95.0 s", "paced", retry_after=95.0)
    assert next_step(at("baileys", failures=2), paced, NOW) == Retry(95.0, paced.error)


def test_an_unavailable_provider_is_passed_over_as_only_waiting():
    down = Failure(ErrorKind.UNAVAILABLE, "sidecar unreachable", "sidecar_down")
    assert next_step(at("baileys"), down, NOW) == Failover("not_ready", down.error, waiting=True)
    open_ = Failure(ErrorKind.UNAVAILABLE, "breaker acme:baileys is open", CODE_BREAKER_OPEN, retry_after=12.5)
    assert next_step(at("baileys"), open_, NOW) == Failover("breaker_open", open_.error, waiting=True,
                                                           retry_after=12.5)


def test_success_is_done():
    assert next_step(at("twilio"), None, NOW) == Done()


# The last provider


def test_when_the_last_provider_fails_the_reply_is_dead_with_the_last_real_failure():
    baileys_refused = Failover("permanent", "sidecar 400 invalid_jid")
    step = next_step(at("twilio", failures=2, passed_over=(baileys_refused,)), transient(), NOW)
    assert step == Dead("exhausted", transient().error, round_over=True)


def test_a_provider_that_only_waits_does_not_hide_the_earlier_failure():
    baileys_refused = Failover("permanent", "sidecar 400 invalid_jid")
    twilio_open = Failure(ErrorKind.UNAVAILABLE, "breaker open", CODE_BREAKER_OPEN, retry_after=3.0)
    step = next_step(at("twilio", passed_over=(baileys_refused,)), twilio_open, NOW)
    assert step == Dead("permanent", "sidecar 400 invalid_jid", round_over=True)


def test_when_every_provider_only_waits_the_reply_waits_for_the_first_to_reopen():
    baileys_open = Failover("breaker_open", "breaker acme:baileys is open", waiting=True, retry_after=20.0)
    twilio_open = Failure(ErrorKind.UNAVAILABLE, "breaker acme:twilio is open", CODE_BREAKER_OPEN, retry_after=7.0)
    step = next_step(at("twilio", passed_over=(baileys_open,)), twilio_open, NOW)
    assert step == Retry(7.0, "breaker acme:baileys is open", round_over=True)


def test_a_provider_waiting_without_a_time_is_retried_with_backoff():
    random.seed(5)
    down = Failure(ErrorKind.UNAVAILABLE, "sidecar unreachable", "sidecar_down")
    step = next_step(at("baileys", providers=("baileys",), attempts=2), down, NOW)
    assert isinstance(step, Retry) and step.round_over
    assert 0.5 <= step.after <= 8  # base 2 x 2^attempts


def test_a_single_provider_that_refuses_is_a_dead_letter():
    refused = Failure(ErrorKind.PERMANENT, "Twilio 400 21610: unsubscribed", "21610")
    assert next_step(at("twilio", providers=("twilio",)), refused, NOW) == Dead("permanent", refused.error,
                                                                                 round_over=True)


def test_providers_are_passed_over_in_order_until_the_last():
    refused = Failure(ErrorKind.PERMANENT, "no", "x")
    three = ("baileys", "twilio", "other")
    assert isinstance(next_step(at("baileys", providers=three), refused, NOW), Failover)
    assert isinstance(next_step(at("twilio", providers=three), refused, NOW), Failover)
    assert isinstance(next_step(at("other", providers=three), refused, NOW), Dead)


# Before anything is sent


def test_a_reply_past_its_deadline_is_dead_with_its_last_error():
    history = History(providers=BOTH, deadline=NOW - timedelta(seconds=1), last_error="Twilio 503")
    assert first_step(history, NOW) == Dead("deadline", "Twilio 503")
    assert first_step(History(providers=BOTH, deadline=NOW - timedelta(seconds=1)), NOW) == Dead(
        "deadline", "delivery deadline passed")
    assert first_step(History(providers=BOTH, deadline=NOW + timedelta(seconds=1)), NOW) is None


def test_a_reply_to_a_customer_who_opted_out_is_never_sent():
    history = History(providers=BOTH, opted_out=True, opted_out_error="the customer opted out")
    assert first_step(history, NOW) == Dead("permanent", "the customer opted out")


def test_no_provider_left_is_a_dead_letter_saying_why():
    assert first_step(History(providers=()), NOW) == Dead("no_provider", "the tenant has no provider enabled")
    # Every provider reported the reply undelivered after accepting it.
    assert first_step(History(providers=(), failed_error="63024 invalid recipient"), NOW) == Dead(
        "undelivered", "63024 invalid recipient")


def test_the_rules_reasons_are_the_dead_letter_reasons_staff_read():
    for name in ("EXHAUSTED", "DEADLINE", "PERMANENT", "AMBIGUOUS", "NO_TEMPLATE", "NO_PROVIDER", "UNDELIVERED"):
        assert getattr(rules, name) == getattr(DeadLetter.Reason, name).value
