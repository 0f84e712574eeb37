"""Gauges computed when Prometheus scrapes, from the database and Redis: open dead
letters, breaker state per tenant and provider, session state, messages waiting. Reading
the source of truth at scrape time is right whatever the number of processes, where a
gauge set by one worker process would be stale or double counted."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("whatsapp.ops.metrics")

BREAKER_STATES = ("closed", "open", "half-open")
# Names this module owns; a same-named metric recorded by a process is dropped in favour
# of this one (see whatsapp.ops.metrics_view).
FAMILIES = {
    "whatsapp_dead_letters_open",
    "whatsapp_breaker_state",
    "whatsapp_breaker_failures",
    "whatsapp_sessions",
    "whatsapp_session_can_send",
    "whatsapp_session_stopped",
    "whatsapp_messages_waiting",
    "whatsapp_oldest_unanswered_seconds",
    "whatsapp_scrape_errors",
}


class PipelineCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        errors = GaugeMetricFamily(
            "whatsapp_scrape_errors", "Sources that could not be read for this scrape", labels=["source"]
        )
        for source, produce in (("database", self._database), ("redis", self._breakers)):
            try:
                yield from produce()
            except Exception as exc:  # noqa: BLE001 - a scrape must still answer
                log.warning("metrics: %s unreadable: %s", source, exc)
                errors.add_metric([source], 1)
        yield errors

    def _database(self) -> Iterator[GaugeMetricFamily]:
        from whatsapp.models import DeadLetter, Direction, Message, SessionState, Status

        dead = GaugeMetricFamily("whatsapp_dead_letters_open", "Open dead letters", labels=["tenant", "reason"])
        rows = (
            DeadLetter.objects.filter(resolved_at__isnull=True)
            .values("message__tenant__slug", "tenant_slug", "reason")
            .annotate(n=Count("id"))
        )
        for row in rows:
            # A refused inbound message has no stored message: its tenant is the slug it came for.
            dead.add_metric([row["message__tenant__slug"] or row["tenant_slug"], row["reason"]], row["n"])
        yield dead

        sessions = GaugeMetricFamily("whatsapp_sessions", "WhatsApp Web sessions by status", labels=["status"])
        for row in SessionState.objects.values("status").annotate(n=Count("id")):
            sessions.add_metric([row["status"]], row["n"])
        yield sessions
        can_send = GaugeMetricFamily(
            "whatsapp_session_can_send", "1 when the tenant's WhatsApp Web session can send", labels=["tenant", "status"]
        )
        for row in SessionState.objects.values("tenant__slug", "status", "can_send"):
            can_send.add_metric([row["tenant__slug"], row["status"]], 1 if row["can_send"] else 0)
        yield can_send
        stopped = GaugeMetricFamily(
            "whatsapp_session_stopped",
            "1 when the reconnect policy stopped the tenant's WhatsApp Web session (until staff press Start)",
            labels=["tenant", "reason"],
        )
        for row in SessionState.objects.exclude(stop_reason="").values("tenant__slug", "stop_reason"):
            stopped.add_metric([row["tenant__slug"], row["stop_reason"]], 1)
        yield stopped

        waiting = GaugeMetricFamily(
            "whatsapp_messages_waiting",
            "Messages not yet answered (received) or not yet accepted by a provider (queued, sending)",
            labels=["status"],
        )
        counts = dict(
            Message.objects.filter(status__in=[Status.RECEIVED, Status.QUEUED, Status.SENDING])
            .values_list("status")
            .annotate(n=Count("id"))
        )
        for status in (Status.RECEIVED, Status.QUEUED, Status.SENDING):
            waiting.add_metric([status], counts.get(status, 0))
        yield waiting

        oldest = Message.objects.filter(direction=Direction.INBOUND, status=Status.RECEIVED).aggregate(
            at=Min("created_at")
        )["at"]
        yield GaugeMetricFamily(
            "whatsapp_oldest_unanswered_seconds",
            "Age of the oldest inbound message without an answer (0: none)",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0,
        )

    def _breakers(self) -> Iterator[GaugeMetricFamily]:
        from whatsapp.outbound.breakers import breaker_states

        state = GaugeMetricFamily(
            "whatsapp_breaker_state", "1 for the breaker's current state", labels=["tenant", "provider", "state"]
        )
        failures = GaugeMetricFamily(
            "whatsapp_breaker_failures", "Consecutive failures counted by the breaker", labels=["tenant", "provider"]
        )
        for row in breaker_states():
            for name in BREAKER_STATES:
                state.add_metric([row["tenant"], row["provider"], name], 1 if row["state"] == name else 0)
            failures.add_metric([row["tenant"], row["provider"]], row["failures"])
        yield state
        yield failures
