"""The baseline for the pipeline benchmark: a bare two-task chain (ai queue, then send
queue) on the same broker and workers, doing nothing but counting."""

from __future__ import annotations

import time
from functools import lru_cache

import redis
from celery import chain, shared_task
from django.conf import settings

COUNTER = "bench:chain:done"


@shared_task
def bench_first(i: int) -> int:
    return i


@lru_cache(maxsize=1)
def _counter() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)  # one pooled client per process, as the pipeline's


@shared_task
def bench_second(i: int) -> int:
    _counter().incr(COUNTER)
    return i


def run_chains(redis_url: str, count: int) -> tuple[float, float]:
    """Enqueue `count` chains; return the seconds until every second task ran and the CPU
    seconds this process spent (enqueuing and polling: the bench's part of the chain)."""
    import os

    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from project.celery import app

    app.conf.broker_url = redis_url
    r = redis.Redis.from_url(redis_url)
    r.delete(COUNTER)
    started, cpu_started = time.time(), time.process_time()
    for i in range(count):
        chain(bench_first.si(i).set(queue="ai"), bench_second.si(i).set(queue="send")).apply_async()
    while int(r.get(COUNTER) or 0) < count:
        if time.time() - started > 300:
            raise RuntimeError("the chains did not finish")
        time.sleep(0.01)
    return time.time() - started, time.process_time() - cpu_started
