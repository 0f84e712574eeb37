"""Tenants are grouped into shards; each shard has one lifecycle queue, consumed by the one
worker that holds the shard's lease (docs/SCALING.md). The default shard (tenants whose
`shard` is empty) keeps the queue name `baileys`: a single-host install, its Procfile
line and the lifecycle tasks already waiting in Redis work unchanged. Shard s has the
queue `baileys.s`."""

from __future__ import annotations

from django.conf import settings

from whatsapp import pipeline

QUEUE_PREFIX = "baileys"


def default_shard() -> str:
    return settings.SESSION_DEFAULT_SHARD


def shard_name_of(tenant) -> str:
    return tenant.shard_id or default_shard()


def lifecycle_queue(shard: str) -> str:
    return QUEUE_PREFIX if shard == default_shard() else f"{QUEUE_PREFIX}.{shard}"


def shard_of_queue(queue: str) -> str | None:
    """The shard whose lifecycle queue this is (None: not a lifecycle queue)."""
    if queue == QUEUE_PREFIX:
        return default_shard()
    if queue.startswith(QUEUE_PREFIX + "."):
        return queue[len(QUEUE_PREFIX) + 1:]
    return None


def enqueue_lifecycle(task_name: str, tenant, *args, countdown: float | None = None) -> None:
    """Put a lifecycle task for this tenant on its shard's queue (raises when the broker
    is down: the admin says so). By name, like every hand-off (whatsapp.pipeline)."""
    pipeline.publish_to(task_name, (tenant.slug, *args), lifecycle_queue(shard_name_of(tenant)), countdown)
