"""Task of the inbound room: collecting what the sidecar kept because Django refused it."""

from __future__ import annotations

import logging

from celery import shared_task

from whatsapp.inbound.rejected import RejectedInboxUnavailable, collect

log = logging.getLogger("whatsapp.tasks")


# The name is frozen (see celeryconfig.py): queued tasks carry it.
@shared_task(name="whatsapp.tasks.collect_rejected_inbound", acks_late=True)
def collect_rejected_inbound(shard: str | None = None) -> dict:
    """File the inbound messages Django refused and the shard's sidecar kept as dead
    letters (whatsapp.inbound.rejected). A sidecar that is down is tried again next time.
    Each shard's owner schedules this for its shard (whatsapp.sessions.supervisor)."""
    try:
        counts = collect(shard=shard)
    except RejectedInboxUnavailable as exc:
        log.info("refused inbound messages not collected this time: %s", exc)
        return {}
    if any(counts.values()):
        log.warning("collected refused inbound messages: %s", counts)
    return counts
