"""Prometheus metrics. With several worker processes set PROMETHEUS_MULTIPROC_DIR (the
run command does) so that /metrics adds up every process's numbers."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INBOUND = Counter("whatsapp_inbound_messages_total", "Inbound messages accepted", ["provider"])
DUPLICATES = Counter("whatsapp_inbound_duplicates_total", "Re-delivered webhooks ignored", ["provider"])
REPLIES = Counter("whatsapp_replies_total", "Outbound replies by final outcome", ["provider", "outcome"])
ATTEMPTS = Counter("whatsapp_delivery_attempts_total", "Provider calls by outcome", ["provider", "outcome"])
FAILOVERS = Counter("whatsapp_failovers_total", "Moves from one provider to the next", ["from_provider"])
RETRIES = Counter("whatsapp_send_retries_total", "Sends scheduled for a retry")
BREAKER_CHANGES = Counter("whatsapp_breaker_changes_total", "Circuit breaker state changes", ["breaker", "state"])
WEBHOOK_LATENCY = Histogram(
    "whatsapp_webhook_seconds", "Webhook handling time", ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
END_TO_END = Histogram(
    "whatsapp_reply_seconds", "Inbound received to reply accepted by a provider",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
)


def breaker_changed(name: str, state: str) -> None:
    BREAKER_CHANGES.labels(breaker=name, state=state).inc()
