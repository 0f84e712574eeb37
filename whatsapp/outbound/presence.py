"""Presence through the tenant's WhatsApp Web session (Tenant.session_presence): before a
reply the session marks the customer's messages read and shows "typing..." for a time
that grows with the reply's length, then sends (the sidecar does it, in the send request:
docs/MEDIA.md). Django decides whether and for how long; the sidecar only performs it.

The typing time stays within the pacing budget: never longer than one pacing interval
of the session (Tenant.baileys_sends_per_minute) nor BAILEYS_PACING_MAX_WAIT, so a
person-like pause never slows the session below the rate pacing allows."""

from __future__ import annotations

from django.conf import settings

from whatsapp.models import Direction, Message, Provider
from whatsapp.outbound.answer_parts import parse_part_key

MAX_READ = 20  # the unread messages of one burst; older ones were read with earlier replies


def typing_seconds(characters: int, sends_per_minute: int) -> float:
    wanted = settings.PRESENCE_TYPING_BASE + characters / max(1.0, settings.PRESENCE_TYPING_CHARS_PER_SECOND)
    return max(0.0, min(wanted, settings.PRESENCE_TYPING_MAX, 60.0 / max(1, sends_per_minute),
                        settings.BAILEYS_PACING_MAX_WAIT))


def chat_jid(contact) -> str:
    """The chat the customer's messages came in (a LID chat when WhatsApp gave one)."""
    if contact.lid_jid:
        return contact.lid_jid
    return contact.wa_jid or f"{contact.phone.lstrip('+')}@s.whatsapp.net"


def unread(message: Message) -> list[dict]:
    """The customer's messages through the session since our previous reply to them."""
    previous = (Message.objects.filter(contact=message.contact, direction=Direction.OUTBOUND,
                                       created_at__lt=message.created_at)
                .order_by("-created_at").values_list("created_at", flat=True).first())
    inbound = Message.objects.filter(contact=message.contact, direction=Direction.INBOUND, provider=Provider.BAILEYS,
                                     created_at__lte=message.created_at).exclude(provider_message_id=None).exclude(
                                         provider_message_id="")
    if previous:
        inbound = inbound.filter(created_at__gt=previous)
    jid = chat_jid(message.contact)
    ids = inbound.order_by("-created_at").values_list("provider_message_id", flat=True)[:MAX_READ]
    return [{"id": i, "remoteJid": jid} for i in reversed(ids)]


def presence_for(part) -> dict | None:
    """The `presence` of a send request to the sidecar, or None (switch off)."""
    message = part.message
    tenant = message.tenant
    if not tenant.session_presence:
        return None
    parsed = parse_part_key(part.key)
    first = parsed is None or parsed[1] == 0
    seconds = typing_seconds(len(part.text), tenant.baileys_sends_per_minute)
    return {"read": unread(message) if first else [], "typingMs": int(seconds * 1000)}
