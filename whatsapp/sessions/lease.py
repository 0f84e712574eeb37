"""A lease: one holder at a time, kept alive by a renewing thread, released at shutdown.
`Lease` keeps it in Redis; whatsapp.sessions.shard_lease.ShardLease (what the lifecycle
worker holds) keeps it in a PostgreSQL row with a fencing token. A second lifecycle
worker for the same shard (which would start a second sidecar and a second socket per
WhatsApp number) never runs beside the holder.

Timing (TTL T): renew every T/6. A holder that cannot renew (its store unreachable) gives
the lease up T/2 after its last successful renewal was sent, so it keeps at least T/2 to
stop what the lease protects before the lease can expire and a successor can take it.
A watchdog thread, not the renewing one, decides that: a renewal call that hangs (a
half-open connection) cannot delay the give-up. Short client timeouts (lease_redis_timeout)
only make a failed try end sooner, so the next one can be made."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger("whatsapp.lease")

# Renew only our own lease. A lease that vanished (Redis restarted and lost it) is taken
# back if nobody else took it in the meantime.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def lease_redis_timeout(ttl_seconds: float) -> float:
    """Connect and read timeout of the lease's Redis client (see the module docstring)."""
    return min(2.0, ttl_seconds / 12)


class Lease:
    # What a call to the store raises when the store does not answer.
    errors: tuple[type[Exception], ...] = (redis.RedisError,)

    def __init__(self, client: redis.Redis, key: str, owner: str, ttl_seconds: float = 30.0) -> None:
        self.client = client
        self.key = key
        self.owner = owner
        self.ttl_ms = int(ttl_seconds * 1000)
        self.ttl = ttl_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # time.monotonic() when the last successful acquire or renewal was sent: the key
        # expires in Redis no earlier than this plus the TTL.
        self.renewed_at: float | None = None

    @property
    def expires_at(self) -> float:
        """The earliest time.monotonic() at which a successor could take the lease."""
        return (self.renewed_at or 0.0) + self.ttl

    def acquire(self) -> bool:
        sent = time.monotonic()
        taken = bool(self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms))
        if taken:
            self.renewed_at = sent
        return taken

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def remaining(self) -> float | None:
        """Seconds until the current holder's lease expires unless renewed (None: no lease)."""
        ms = self.client.pttl(self.key)
        return ms / 1000 if ms >= 0 else None

    def acquire_when_free(self, waiting: Callable[[str | None, float | None, Exception | None], None]) -> None:
        """Block until the lease is ours. While another process holds it (or Redis does not
        answer) call waiting(holder, seconds_left, error) and try again every second or so:
        a successor started while a killed holder's lease is still live takes over when it
        expires, instead of exiting in a loop that a process manager may give up on."""
        while True:
            try:
                if self.acquire():
                    return
                holder, left, error = self.holder(), self.remaining(), None
            except self.errors as exc:
                holder, left, error = None, None, exc
            waiting(holder, left, error)
            time.sleep(min(1.0, self.ttl / 6))

    def renew(self) -> bool:
        sent = time.monotonic()
        renewed = bool(self.client.eval(_RENEW, 1, self.key, self.owner, self.ttl_ms))
        if renewed:
            self.renewed_at = sent
        return renewed

    def release(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(5)
        try:
            self._release()
        except self.errors as exc:
            log.warning("could not release the lease %s (it expires by itself): %s", self.key, exc)

    def _release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.owner)

    def keep_renewed(self, on_lost: Callable[[str | None], None]) -> None:
        """Renew every sixth of the TTL in a daemon thread (every second while the store
        fails). on_lost(holder) is called once: when another process holds the lease, or
        (holder None) when no renewal succeeded for half the TTL, so that at least half
        the TTL is left before self.expires_at."""
        interval = self.ttl / 6
        once = threading.Lock()

        def lose(holder: str | None) -> None:
            if once.acquire(blocking=False):
                self._stop.set()
                on_lost(holder)

        def watchdog() -> None:
            while not self._stop.wait(min(0.1, interval)):
                if time.monotonic() >= self.expires_at - self.ttl / 2:
                    log.error("lease %s not renewed for %.1f s: giving it up", self.key,
                              time.monotonic() - (self.renewed_at or 0.0))
                    lose(None)
                    return

        def renewer() -> None:
            wait = interval
            while not self._stop.wait(wait):
                try:
                    if self.renew():
                        wait = interval
                        continue
                    holder = self.holder()
                except self.errors as exc:
                    log.warning("lease %s not renewed: %s", self.key, exc)
                    wait = min(1.0, interval)
                    continue
                lose(holder)
                return

        self._threads = [
            threading.Thread(target=renewer, name=f"lease:{self.key}", daemon=True),
            threading.Thread(target=watchdog, name=f"lease-watchdog:{self.key}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
