"""Worker heartbeats in Redis, so that /readyz can tell in a millisecond whether every
queue has a live consumer, without a Celery inspect broadcast (which waits for replies
and gets none from a worker that is busy).

Each worker process (the consumer, not its pool children) records itself in one sorted
set per queue it consumes, scored with the time of its last heartbeat. Celery sends the
heartbeat every few seconds from the consumer's event loop (it needs task events, which
celeryconfig turns on), so a busy prefork pool does not stop it. A worker that stops
cleanly removes itself; one that dies simply goes stale after HEARTBEAT_TTL seconds.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache

import redis
from celery import signals

from project.redis_clients import redis_client

log = logging.getLogger("whatsapp.ops.heartbeat")

KEY = "ops:workers:{queue}"
# Celery's event heartbeat runs every 2 s; a worker silent for longer than this is gone.
HEARTBEAT_TTL = 30

_me: dict[str, object] = {"hostname": None, "queues": ()}


def _redis() -> redis.Redis:
    from django.conf import settings

    return _client(settings.REDIS_URL)


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # Short timeouts: this runs in the worker's event loop and in /readyz, and must
    # never stall either.
    return redis_client(0.5, url=url)


def beat(hostname: str, queues: list[str] | tuple[str, ...], now: float | None = None) -> None:
    """Record that `hostname` consumes `queues` right now."""
    now = time.time() if now is None else now
    pipe = _redis().pipeline(transaction=False)
    for queue in queues:
        key = KEY.format(queue=queue)
        pipe.zadd(key, {hostname: now})
        pipe.zremrangebyscore(key, 0, now - HEARTBEAT_TTL)  # forget the long dead
        pipe.expire(key, HEARTBEAT_TTL * 4)
    pipe.execute()


def live_workers(queues: list[str], now: float | None = None) -> dict[str, int]:
    """How many workers sent a heartbeat for each queue within HEARTBEAT_TTL."""
    now = time.time() if now is None else now
    pipe = _redis().pipeline(transaction=False)
    for queue in queues:
        pipe.zcount(KEY.format(queue=queue), now - HEARTBEAT_TTL, "+inf")
    return dict(zip(queues, pipe.execute(), strict=True))


def _safe_beat() -> None:
    if not _me["hostname"]:
        return
    try:
        beat(_me["hostname"], _me["queues"])
    except redis.RedisError as exc:
        # Redis is down: the worker cannot take tasks either, so /readyz is right to fail.
        log.debug("heartbeat not recorded: %s", exc)


@signals.worker_ready.connect
def _on_ready(sender=None, **_kwargs) -> None:
    # sender is the worker's Consumer: its task consumer knows the queues given with -Q.
    _me["hostname"] = sender.hostname
    _me["queues"] = tuple(sorted(q.name for q in sender.task_consumer.queues))
    _safe_beat()


@signals.heartbeat_sent.connect
def _on_heartbeat(**_kwargs) -> None:
    _safe_beat()


@signals.worker_shutdown.connect
def _on_shutdown(**_kwargs) -> None:
    if not _me["hostname"]:
        return
    try:
        pipe = _redis().pipeline(transaction=False)
        for queue in _me["queues"]:
            pipe.zrem(KEY.format(queue=queue), _me["hostname"])
        pipe.execute()
    except redis.RedisError:
        pass
