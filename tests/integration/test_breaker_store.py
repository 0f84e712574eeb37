"""The breakers' shared state behind our own small interface (whatsapp.outbound.breakers
BreakerStore), read through pybreaker's public CircuitRedisStorage in the suite's Redis:
what every worker process sees of a tenant's breaker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pybreaker
import pytest

from whatsapp.outbound.breakers import BreakerReading, RedisBreakerStore, breaker_redis, get_breaker
from whatsapp.outbound.providers.base import ErrorKind, ProviderError

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def test_an_open_breaker_says_how_long_until_its_trial_call():
    opened = BreakerReading("acme:twilio", pybreaker.STATE_OPEN, 3, NOW - timedelta(seconds=10))
    assert opened.open_for(30, NOW) == 20
    assert opened.open_for(30, NOW + timedelta(seconds=25)) == 0
    assert BreakerReading("acme:twilio", pybreaker.STATE_CLOSED, 1, None).open_for(30, NOW) == 0
    # pybreaker had no time to write when it opened: let the trial call through.
    assert BreakerReading("acme:twilio", pybreaker.STATE_OPEN, 3, None).open_for(30, NOW) == 0


def test_another_process_reads_the_same_state_failures_and_opening_time(redis_server, settings):
    settings.BREAKER_FAIL_MAX = 2
    breaker = get_breaker("acme", "twilio")

    def failing():
        raise ProviderError("Twilio 503", ErrorKind.TRANSIENT, "20503")

    with pytest.raises(ProviderError):
        breaker.call(failing)
    elsewhere = RedisBreakerStore("acme:twilio", breaker_redis())  # a second worker's view
    assert (elsewhere.read().state, elsewhere.read().failures) == ("closed", 1)

    with pytest.raises(ProviderError):
        breaker.call(failing)
    reading = elsewhere.read()
    assert reading.state == "open"
    assert abs((datetime.now(UTC) - reading.opened_at).total_seconds()) < 2
    assert RedisBreakerStore.names(breaker_redis()) == ["acme:twilio"]
