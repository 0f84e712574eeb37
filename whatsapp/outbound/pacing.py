"""Pacing of sends through one WhatsApp Web session: a burst of replies from one number
gets it banned, so sends are spaced at Tenant.baileys_sends_per_minute. Pacing delays,
it never drops.

A token bucket in Redis, in its GCRA form (one timestamp per session, shared by every
send worker, Redis's own clock): each send reserves the next free slot. A short wait is
slept in place; a long one is not reserved for the caller now but the slot is kept for
its idempotency key, and the caller retries at that time (whatsapp.outbound.delivery retries a
transient ProviderError after its retry_after) and then finds its slot waiting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

from project.redis_clients import redis_client

# The error code recorded on the attempt of a send that waits for its slot (its kind is
# ErrorKind.PACED: providers.base).
PACED = "paced"

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, tolerance, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local held = redis.call('GET', KEYS[2])
if held then
  local wait = math.max(0, tonumber(held) - now)
  if wait <= max_wait then redis.call('DEL', KEYS[2]) end
  return wait
end
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local at = tat - tolerance
local wait = math.max(0, at - now)
redis.call('SET', KEYS[1], tat + interval, 'PX', tat + interval - now + 60000)
if wait > max_wait then
  redis.call('SET', KEYS[2], at, 'PX', wait + 600000)
end
return wait
"""


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis_client(2, url=url)


@dataclass(frozen=True)
class Slot:
    wait: float  # seconds until this send may go
    deferred: bool  # True: too far off; retry after `wait` (the slot is kept for the key)


def reserve(tenant_slug: str, key: str, per_minute: int, max_wait: float | None = None) -> Slot:
    """Reserve the next send slot of the tenant's session for the send `key`."""
    max_wait = settings.BAILEYS_PACING_MAX_WAIT if max_wait is None else max_wait
    interval_ms = 60000.0 / max(1, per_minute)
    tolerance_ms = interval_ms * max(0, settings.BAILEYS_PACING_BURST - 1)
    wait_ms = _redis(settings.REDIS_URL).eval(
        _RESERVE, 2, f"pace:baileys:{tenant_slug}", f"pace:baileys:{tenant_slug}:held:{key}",
        int(interval_ms), int(tolerance_ms), int(max_wait * 1000),
    )
    wait = int(wait_ms) / 1000
    return Slot(wait, wait > max_wait)


def wait_for_slot(tenant_slug: str, key: str, per_minute: int) -> Slot:
    """Sleep until the slot when it is near; return the Slot (deferred: do not send now)."""
    slot = reserve(tenant_slug, key, per_minute)
    if not slot.deferred and slot.wait > 0:
        time.sleep(slot.wait)
    return slot
