"""One circuit breaker per tenant and provider (pybreaker), its state in Redis so that
every worker process sees the same breaker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol

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


@dataclass(frozen=True)
class BreakerReading:
    name: str
    state: str  # pybreaker.STATE_CLOSED, STATE_OPEN or STATE_HALF_OPEN
    failures: int  # consecutive failures counted towards opening
    opened_at: datetime | None  # when it last opened (whole seconds, UTC)

    def open_for(self, reset_timeout: float, now: datetime) -> float:
        """Seconds until an open breaker lets a trial call through (0: now, or not open)."""
        if self.state != pybreaker.STATE_OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, (self.opened_at + timedelta(seconds=reset_timeout) - now).total_seconds())


class BreakerStore(Protocol):
    """Where one breaker's state lives, shared by every worker process: what pybreaker
    writes through (`pybreaker_storage`) and what we read (`read`), so that nothing of
    ours reads pybreaker's private attributes."""

    name: str
    pybreaker_storage: pybreaker.CircuitBreakerStorage

    def read(self) -> BreakerReading: ...


class RedisBreakerStore:
    """A breaker's state in Redis through pybreaker's public CircuitRedisStorage, under
    "breaker:<tenant>:<provider>:pybreaker:*"."""

    PREFIX = "breaker:"
    SUFFIX = f":{pybreaker.CircuitRedisStorage.BASE_NAMESPACE}:state"

    def __init__(self, name: str, client: redis.Redis):
        self.name = name
        self.pybreaker_storage = pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, client, namespace=f"{self.PREFIX}{name}"
        )

    def read(self) -> BreakerReading:
        storage = self.pybreaker_storage
        return BreakerReading(self.name, storage.state, storage.counter, storage.opened_at)

    @classmethod
    def names(cls, client: redis.Redis) -> list[str]:
        """Every breaker that has a state in Redis."""
        pattern = f"{cls.PREFIX}*{cls.SUFFIX}".encode()
        return [key.decode()[len(cls.PREFIX) : -len(cls.SUFFIX)] for key in client.scan_iter(match=pattern, count=500)]


class SharedBreaker(pybreaker.CircuitBreaker):
    """A pybreaker breaker that keeps its store at hand (pybreaker keeps it private)."""

    def __init__(self, store: BreakerStore, **kwargs):
        super().__init__(state_storage=store.pybreaker_storage, name=store.name, **kwargs)
        self.store = store


_breakers: dict[str, SharedBreaker] = {}


def get_breaker(tenant_slug: str, provider: str) -> SharedBreaker:
    name = breaker_name(tenant_slug, provider)
    if name not in _breakers:
        _breakers[name] = SharedBreaker(
            RedisBreakerStore(name, breaker_redis()),
            fail_max=settings.BREAKER_FAIL_MAX,
            reset_timeout=settings.BREAKER_RESET_TIMEOUT,
            exclude=[_is_not_a_health_signal],
            listeners=[LoggingListener()],
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
    reading = breaker.store.read()
    state = reading.state
    remaining = reading.open_for(breaker.reset_timeout, datetime.now(UTC))
    if remaining > 0:
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
    client = breaker_redis()
    for name in RedisBreakerStore.names(client):
        reading = RedisBreakerStore(name, client).read()
        tenant, _, provider = name.partition(":")
        rows.append({"name": name, "tenant": tenant, "provider": provider, "state": reading.state,
                     "failures": reading.failures})
    return sorted(rows, key=lambda row: row["name"])


def reset_breaker(tenant_slug: str, provider: str) -> None:
    get_breaker(tenant_slug, provider).close()
