"""One circuit breaker per tenant and provider (pybreaker), its state in Redis so that
every worker process sees the same breaker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import pybreaker
import redis
from django.conf import settings

from project.redis_clients import redis_client
from whatsapp.outbound.providers.base import ProviderError

log = logging.getLogger("whatsapp.breaker")


@lru_cache(maxsize=1)
def breaker_redis() -> redis.Redis:
    # pybreaker's Redis storage needs bytes, not decoded strings.
    return redis_client(2)


def _is_not_a_health_signal(exc: BaseException) -> bool:
    """A permanent error (a bad number, a closed 24-hour window) says nothing about the
    provider's health, so it neither opens the breaker nor counts as a failure; nor does
    a send deferred by pacing (whatsapp.outbound.pacing)."""
    return isinstance(exc, ProviderError) and exc.says_nothing_of_health


class LoggingListener(pybreaker.CircuitBreakerListener):
    def state_change(self, cb, old_state, new_state):
        log.warning(
            "breaker %s: %s -> %s",
            cb.name,
            getattr(old_state, "name", old_state),
            getattr(new_state, "name", new_state),
            extra={"breaker": cb.name, "breaker_state": getattr(new_state, "name", str(new_state))},
        )
        try:
            from whatsapp import metrics

            metrics.breaker_changed(cb.name, getattr(new_state, "name", str(new_state)))
        except Exception:  # noqa: BLE001 - metrics must never break delivery
            pass


def breaker_name(tenant_slug: str, provider: str) -> str:
    return f"{tenant_slug}:{provider}"


_breakers: dict[str, pybreaker.CircuitBreaker] = {}


def get_breaker(tenant_slug: str, provider: str) -> pybreaker.CircuitBreaker:
    name = breaker_name(tenant_slug, provider)
    if name not in _breakers:
        storage = pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, breaker_redis(), namespace=f"breaker:{name}"
        )
        _breakers[name] = pybreaker.CircuitBreaker(
            fail_max=settings.BREAKER_FAIL_MAX,
            reset_timeout=settings.BREAKER_RESET_TIMEOUT,
            exclude=[_is_not_a_health_signal],
            listeners=[LoggingListener()],
            state_storage=storage,
            name=name,
            # Keep the provider's own error (with its kind) when the breaker trips.
            throw_new_error_on_trip=False,
        )
    return _breakers[name]


class BreakerOpen(Exception):
    """The provider is skipped without a network call; `retry_after` says when it may be
    tried again."""

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


def call_through_breaker(tenant_slug: str, provider: str, func, *args, **kwargs):
    """Call func unless the breaker is open. After the reset timeout only one process
    in the whole system gets the half-open trial call (a Redis lock), the rest skip."""
    breaker = get_breaker(tenant_slug, provider)
    state = breaker.current_state
    if state == pybreaker.STATE_OPEN:
        opened_at = breaker._state_storage.opened_at
        reopens_at = (opened_at or datetime.now(UTC)) + timedelta(seconds=breaker.reset_timeout)
        if opened_at and datetime.now(UTC) < reopens_at:
            remaining = (reopens_at - datetime.now(UTC)).total_seconds()
            raise BreakerOpen(f"breaker {breaker.name} is open", retry_after=remaining + 0.5)
    if state in (pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN):
        # Half-open in Redis with the probe lock free means the worker making the trial
        # call died during it (SIGKILL, OOM): its lock expired, but pybreaker's state stays
        # half-open for good. Whoever takes the lock makes the next trial call, or the
        # provider would be skipped forever.
        probe_key = f"breaker:{breaker.name}:probe"
        if not breaker_redis().set(probe_key, b"1", nx=True, ex=max(5, int(settings.SEND_LEASE_SECONDS))):
            raise BreakerOpen(f"breaker {breaker.name} is half-open; another worker is probing")
        try:
            return _call(breaker, func, *args, **kwargs)
        finally:
            breaker_redis().delete(probe_key)
    return _call(breaker, func, *args, **kwargs)


def _call(breaker, func, *args, **kwargs):
    try:
        return breaker.call(func, *args, **kwargs)
    except pybreaker.CircuitBreakerError as exc:
        raise BreakerOpen(str(exc)) from exc


def breaker_states() -> list[dict]:
    """Every breaker known to Redis, for the admin and /metrics."""
    rows = []
    r = breaker_redis()
    # pybreaker keys look like "<namespace>:pybreaker:state".
    for key in r.scan_iter(match=b"breaker:*:pybreaker:state", count=500):
        name = key.decode()[len("breaker:") : -len(":pybreaker:state")]
        state = (r.get(key) or b"closed").decode()
        fails = int(r.get(f"breaker:{name}:pybreaker:fail_counter") or 0)
        tenant, _, provider = name.partition(":")
        rows.append({"name": name, "tenant": tenant, "provider": provider, "state": state, "failures": fails})
    return sorted(rows, key=lambda row: row["name"])


def reset_breaker(tenant_slug: str, provider: str) -> None:
    get_breaker(tenant_slug, provider).close()
