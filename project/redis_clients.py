"""The one place that builds Redis clients. Every client has bounded timeouts: a Redis
that does not answer must fail a call in seconds, never hang a web or worker process.
Callers choose the timeout for their job and cache the client where it pays."""

from __future__ import annotations

import redis
from django.conf import settings
from redis.retry import Retry


def redis_client(timeout: float, *, url: str | None = None, decode: bool = False,
                 retry: Retry | None = None) -> redis.Redis:
    """A client of REDIS_URL (or `url`) whose connect and every call give up after
    `timeout` seconds; `decode` returns str instead of bytes; `retry` replaces
    redis-py's own retries."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "decode_responses": decode}
    if retry is not None:
        options["retry"] = retry
    return redis.Redis.from_url(url or settings.REDIS_URL, **options)
