"""The inbox's list of conversations: a tenant's contacts, newest activity first, with
unread counts (customer messages since staff last opened the conversation), filters and
search."""

from __future__ import annotations

from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet

from whatsapp.models import Contact, DeadLetter, Direction

FILTERS = {
    "needs_human": ("Needs a human", Q(conversation__needs_human=True)),
    "bot_active": ("Bot active", Q(conversation__isnull=True)
                   | Q(conversation__bot_paused=False, conversation__opted_out=False)),
    "paused": ("Bot paused", Q(conversation__bot_paused=True)),
    "opted_out": ("Opted out", Q(conversation__opted_out=True)),
    "dead_letter": ("Has a dead letter", Q(has_dead_letter=True)),
}


def conversations(tenant, show: str = "", search: str = "") -> QuerySet:
    open_letter = DeadLetter.objects.filter(message__contact=OuterRef("pk"), resolved_at__isnull=True)
    unread = Q(messages__direction=Direction.INBOUND) & (
        Q(conversation__staff_read_at__isnull=True) | Q(messages__created_at__gt=F("conversation__staff_read_at"))
    )
    rows = (
        Contact.objects.filter(tenant=tenant)
        .select_related("conversation")
        .annotate(
            last_activity=Max("messages__created_at"),
            unread=Count("messages", filter=unread),
            has_dead_letter=Exists(open_letter),
        )
    )
    if show in FILTERS:
        rows = rows.filter(FILTERS[show][1])
    search = search.strip()
    if search:
        digits = "".join(c for c in search if c.isdigit())
        match = Q(name__icontains=search)
        if digits:
            match |= Q(phone__contains=digits)
        rows = rows.filter(match)
    return rows.order_by("-last_activity", "-pk")
