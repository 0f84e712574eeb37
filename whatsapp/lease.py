"""A Redis lease: one holder at a time, kept alive by a renewing thread, released at
shutdown. The lifecycle worker holds one so that a second lifecycle worker (which would
start a second sidecar and a second socket per WhatsApp number) refuses to run."""

from __future__ import annotations

import logging
import threading
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


class Lease:
    def __init__(self, client: redis.Redis, key: str, owner: str, ttl_seconds: float = 30.0) -> None:
        self.client = client
        self.key = key
        self.owner = owner
        self.ttl_ms = int(ttl_seconds * 1000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.key, self.owner, self.ttl_ms))

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        try:
            self.client.eval(_RELEASE, 1, self.key, self.owner)
        except redis.RedisError as exc:
            log.warning("could not release the lease %s (it expires by itself): %s", self.key, exc)

    def keep_renewed(self, on_lost: Callable[[str | None], None]) -> None:
        """Renew every third of the TTL in a daemon thread. on_lost(holder) is called once
        if another process holds the lease now; a Redis outage is only retried."""

        def run() -> None:
            while not self._stop.wait(self.ttl_ms / 3000):
                try:
                    if self.renew():
                        continue
                    holder = self.holder()
                except redis.RedisError as exc:
                    log.warning("lease %s not renewed (Redis): %s", self.key, exc)
                    continue
                self._stop.set()
                on_lost(holder)

        self._thread = threading.Thread(target=run, name=f"lease:{self.key}", daemon=True)
        self._thread.start()
