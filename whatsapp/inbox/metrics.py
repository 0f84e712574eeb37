"""Inbox gauges computed at scrape time from the database (like whatsapp.ops.collectors):
conversations that need a person, paused or opted out, and messages waiting for staff."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


def needs_human_count() -> int:
    from whatsapp.inbox.models import Conversation

    return Conversation.objects.filter(needs_human=True).count()


class InboxCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from whatsapp.inbox.models import Conversation
        from whatsapp.models import Message, Status

        families = {
            "needs_human": GaugeMetricFamily(
                "whatsapp_conversations_needing_human", "Conversations flagged 'needs a human'", labels=["tenant"]),
            "bot_paused": GaugeMetricFamily(
                "whatsapp_conversations_paused", "Conversations where the bot is paused", labels=["tenant"]),
            "opted_out": GaugeMetricFamily(
                "whatsapp_conversations_opted_out", "Customers who opted out", labels=["tenant"]),
        }
        for flag, family in families.items():
            rows = Conversation.objects.filter(**{flag: True}).values("contact__tenant__slug").annotate(n=Count("id"))
            for row in rows:
                family.add_metric([row["contact__tenant__slug"]], row["n"])
            yield family
        waiting = GaugeMetricFamily(
            "whatsapp_messages_waiting_for_staff", "Customer messages held for staff (bot paused)", labels=["tenant"])
        for row in Message.objects.filter(status=Status.WAITING).values("tenant__slug").annotate(n=Count("id")):
            waiting.add_metric([row["tenant__slug"]], row["n"])
        yield waiting
