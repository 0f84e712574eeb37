"""Which reply answers a customer's message. A reply links to the message it answers
(Message.in_reply_to); a burst of messages gets one reply, linked to the burst's newest
message (bots.tasks.store_reply), so the earlier messages of the burst have no reply of
their own: theirs is the first reply linked to a message of the same conversation at or
after them."""

from __future__ import annotations

from django.db.models import Q

from whatsapp.models import Direction, Message, Status


def answering_reply(inbound: Message) -> Message | None:
    """The reply that answers `inbound` (its own, or its burst's), or None if none yet."""
    own = Message.objects.filter(in_reply_to=inbound, direction=Direction.OUTBOUND).first()
    if own is not None or inbound.status != Status.ANSWERED:
        return own
    return burst_reply(inbound)


def burst_reply(inbound: Message) -> Message | None:
    """The reply to the burst `inbound` was merged into (not its own)."""
    later_in_conversation = Q(in_reply_to__created_at__gt=inbound.created_at) | Q(
        in_reply_to__created_at=inbound.created_at, in_reply_to__pk__gt=inbound.pk
    )
    return (
        Message.objects.filter(
            later_in_conversation, direction=Direction.OUTBOUND,
            in_reply_to__tenant_id=inbound.tenant_id, in_reply_to__contact_id=inbound.contact_id,
        )
        .order_by("in_reply_to__created_at", "in_reply_to__pk")
        .first()
    )
