"""The numbers an operator needs to tell whether customers are being answered, and why
not: shared by the admin dashboard and `manage.py pipeline_status`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from whatsapp.models import DeadLetter, DeliveryAttempt, Direction, Message, SessionState, Status


def reply_dead_letters(since):
    """Dead letters of replies made since then: inbound ones (unanswered or refused
    customer messages) are not replies, and are counted apart."""
    return DeadLetter.objects.filter(created_at__gte=since, kind=DeadLetter.Kind.OUTBOUND)


# Accepted by a provider, then reported failed/undelivered: it did not reach the customer.
FAILED_AFTER_ACCEPTANCE = (Status.FAILED, Status.UNDELIVERED)

WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# The chart covers exactly the "day" window, so its bars add up to the day's counts.
CHART_HOURS = 24
NOT_TRIED = "no provider tried"
# Above this many replies in a window the percentiles come from the most recent ones.
LATENCY_SAMPLE = 20000


@dataclass
class Window:
    name: str
    since: datetime
    inbound: int = 0
    answered: int = 0  # inbound messages a reply was made for (their own, or their burst's)
    merged: int = 0  # ... answered by the reply to a later message of the same burst
    by_status: dict[str, int] = field(default_factory=dict)  # outbound
    by_provider: dict[str, dict[str, int]] = field(default_factory=dict)  # outbound, provider -> status -> n
    replies_sent: int = 0  # accepted by a provider in the window (the chart's green)
    replies_dead: int = 0  # dead letters made in the window (the chart's red)
    dead_resolved: int = 0  # ... of which staff have since requeued or discarded, or a receipt confirmed
    replies_failed: int = 0  # accepted in the window, then reported failed/undelivered by the provider
    median_reply_s: float | None = None
    p95_reply_s: float | None = None
    attempted: int = 0  # outbound messages with at least one attempt
    failed_over: int = 0  # ... of which more than one provider was tried

    @property
    def failover_rate(self) -> float | None:
        return self.failed_over / self.attempted if self.attempted else None


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 1))  # ceil(n * q), at least 1
    return sorted_values[int(rank) - 1]


def window_summary(name: str, since: datetime) -> Window:
    w = Window(name=name, since=since)
    inbound = Message.objects.filter(direction=Direction.INBOUND, created_at__gte=since)
    w.inbound = inbound.count()
    answered = inbound.filter(status=Status.ANSWERED)
    w.answered = answered.count()
    # A burst gets one reply, linked to its newest message (bots.tasks): the others have none of their own.
    w.merged = answered.exclude(replies__direction=Direction.OUTBOUND).count()

    outbound = Message.objects.filter(direction=Direction.OUTBOUND, created_at__gte=since)
    by_provider: dict[str, dict[str, int]] = defaultdict(dict)
    by_status: dict[str, int] = defaultdict(int)
    for row in with_shown_provider(outbound).values("shown_provider", "status").annotate(n=Count("id")):
        by_provider[row["shown_provider"]][row["status"]] = row["n"]
        by_status[row["status"]] += row["n"]
    w.by_status, w.by_provider = dict(by_status), {k: dict(v) for k, v in sorted(by_provider.items())}

    # The same two numbers as the chart's bars (hourly_replies), so the page agrees with itself.
    accepted = Message.objects.filter(direction=Direction.OUTBOUND, sent_at__gte=since)
    w.replies_sent = accepted.exclude(status__in=FAILED_AFTER_ACCEPTANCE).count()
    # A reply the provider reported failed/undelivered did not reach the customer.
    w.replies_failed = accepted.filter(status__in=FAILED_AFTER_ACCEPTANCE).count()
    made = reply_dead_letters(since)
    w.replies_dead = made.count()
    w.dead_resolved = made.filter(resolved_at__isnull=False).count()

    # Time to reply: the customer's message stored -> our answer accepted by a provider.
    latencies = sorted(
        (sent - received).total_seconds()
        for sent, received in Message.objects.filter(
            direction=Direction.OUTBOUND, sent_at__gte=since, in_reply_to__isnull=False
        )
        .order_by("-sent_at")
        .values_list("sent_at", "in_reply_to__created_at")[:LATENCY_SAMPLE]
    )
    w.median_reply_s = percentile(latencies, 0.5)
    w.p95_reply_s = percentile(latencies, 0.95)

    providers_tried = (
        DeliveryAttempt.objects.filter(message__in=outbound)
        .values("message_id")
        .annotate(n=Count("provider", distinct=True))
        .values_list("n", flat=True)
    )
    tried = list(providers_tried)
    w.attempted = len(tried)
    w.failed_over = sum(1 for n in tried if n > 1)
    return w


def with_shown_provider(outbound):
    """Each reply under the provider that accepted it or, if none did (a dead letter, a
    discarded reply), the last one tried: never under an empty "none"."""
    last_tried = DeliveryAttempt.objects.filter(message=OuterRef("pk")).order_by("-started_at", "-pk")
    return outbound.annotate(
        shown_provider=Coalesce(NullIf(F("provider"), Value("")), Subquery(last_tried.values("provider")[:1]),
                                Value(NOT_TRIED))
    )


def hourly_replies(now: datetime, hours: int = CHART_HOURS) -> list[dict]:
    """Replies accepted by a provider and dead letters made per hour of the last `hours`
    (exactly, so they add up to the day window's counts), oldest first: the dashboard's chart."""
    start = now - timedelta(hours=hours)
    buckets = [{"start": start + timedelta(hours=i), "sent": 0, "dead": 0} for i in range(hours)]
    sent = (Message.objects.filter(direction=Direction.OUTBOUND, sent_at__gte=start)
            .exclude(status__in=FAILED_AFTER_ACCEPTANCE).values_list("sent_at", flat=True))
    dead = reply_dead_letters(start).values_list("created_at", flat=True)
    for kind, stamps in (("sent", sent), ("dead", dead)):
        for stamp in stamps.iterator():
            # A stamp written after `now` (while this ran) goes in the last bar, as the counts have it.
            index = min(int((stamp - start).total_seconds() // 3600), hours - 1)
            if index >= 0:
                buckets[index][kind] += 1
    return buckets


def pipeline_summary(now: datetime | None = None) -> dict:
    from whatsapp.outbound.breakers import breaker_states

    now = now or timezone.now()
    open_dead = DeadLetter.objects.filter(resolved_at__isnull=True)
    try:
        breakers = breaker_states()
        breakers_error = ""
    except Exception as exc:  # noqa: BLE001 - Redis down must not hide the rest
        breakers, breakers_error = [], f"Redis unreachable: {exc}"
    waiting = Message.objects.filter(direction=Direction.INBOUND, status=Status.RECEIVED)
    oldest = waiting.order_by("created_at").values_list("created_at", flat=True).first()
    return {
        "now": now,
        "windows": [window_summary(name, now - delta) for name, delta in WINDOWS.items()],
        "dead_letters_open": open_dead.count(),
        "dead_letters_by_reason": dict(
            open_dead.values_list("reason").annotate(n=Count("id")).order_by("-n")
        ),
        "unanswered": waiting.count(),
        "oldest_unanswered_s": (now - oldest).total_seconds() if oldest else None,
        "sessions": list(
            SessionState.objects.select_related("tenant")
            .order_by("tenant__slug")
            .values(
                "tenant__slug", "status", "desired", "connected", "can_send", "auth_paired",
                "last_disconnect_code", "last_disconnect_reason", "alert", "stop_reason", "stopped_at",
                updated=F("updated_at"),
            )
        ),
        "sessions_stopped": SessionState.objects.exclude(stop_reason="").count(),
        "breakers": breakers,
        "breakers_open": [b for b in breakers if b["state"] != "closed"],
        "breakers_error": breakers_error,
        "hourly": hourly_replies(now),
    }


def seconds(value: float | None) -> str:
    """1.234 -> '1.2 s', 95 -> '1 min 35 s', None -> '-'."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"
