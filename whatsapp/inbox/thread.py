"""A conversation as the inbox shows it: customer messages, bot and staff replies with
their delivery ticks, dead letters in place, and system events, oldest first. The page
renders this list (as JSON) and polls it for changes."""

from __future__ import annotations

from django.urls import reverse

from whatsapp.inbox.dead_letters import LABELS, actions_for
from whatsapp.inbox.models import Conversation, ConversationEvent
from whatsapp.inbox.replies import templates_of, twilio_window
from whatsapp.media.preview import render_preview
from whatsapp.models import Contact, DeadLetter, Direction, Message, Status

# WhatsApp's ticks: one grey (sent), two grey (delivered), two blue (read).
TICKS = {
    Status.QUEUED: "pending", Status.SENDING: "pending", Status.SENT: "sent", Status.DELIVERED: "delivered",
    Status.READ: "read", Status.FAILED: "failed", Status.UNDELIVERED: "failed", Status.DEAD: "failed",
    Status.DISCARDED: "failed",
}


def _author(message: Message) -> str:
    if message.author_id:
        return message.author.get_full_name() or message.author.get_username()
    if message.engine == "phone":
        return "Owner (from the phone)"
    return f"Bot ({message.engine or 'bot'})"


def _message_item(message: Message, letters: dict[int, DeadLetter], can_resolve: bool = False) -> dict:
    item = {
        "type": "in" if message.direction == Direction.INBOUND else "out",
        "key": f"m{message.pk}",
        "at": message.created_at.isoformat(),
        "body": message.body if message.media_type == "text" else f"[{message.media_type}] {message.body}".strip(),
        "status": message.status,
        "status_label": message.get_status_display(),
    }
    if message.direction == Direction.OUTBOUND:
        item.update(author=_author(message), staff=bool(message.author_id), provider=message.provider,
                    engine=message.engine, ticks=TICKS.get(message.status, ""))
    if message.media_type != "text":
        # Escaped by format_html (whatsapp.media.preview): the page inserts it as HTML.
        item["media"] = [
            str(render_preview(m, reverse("inbox-media", args=[message.tenant.slug, message.contact_id, m.pk])))
            for m in message.media.all()
        ]
        if item["body"].startswith(f"[{message.media_type}]") and item["media"]:
            item["body"] = message.body  # the preview shows what it is
    letter = letters.get(message.pk)
    if letter is not None:
        item["dead_letter"] = {
            "reason": letter.get_reason_display(),
            "url": reverse("admin:whatsapp_deadletter_change", args=[letter.pk]),
            # Buttons on the page (POST, CSRF), only for staff allowed to resolve dead letters.
            "actions": [{"name": a, "label": LABELS[a]} for a in actions_for(letter)] if can_resolve else [],
            "action_url": reverse("inbox-dead-letter", args=[message.tenant.slug, message.contact_id, letter.pk]),
        }
    return item


def _event_item(event: ConversationEvent) -> dict:
    who = (event.by.get_full_name() or event.by.get_username()) if event.by_id else ""
    text = event.get_kind_display() + (f" by {who}" if who else "") + (f": {event.note}" if event.note else "")
    return {"type": "event", "key": f"e{event.pk}", "at": event.at.isoformat(), "body": text}


def thread(contact: Contact, limit: int = 200, can_resolve: bool = False) -> dict:
    """The newest `limit` messages (and the events since the oldest of them); `has_older`
    says whether there is more before them."""
    messages = list(
        Message.objects.filter(contact=contact).select_related("author", "tenant").prefetch_related("media")
        .order_by("-created_at", "-pk")[:limit + 1]
    )
    has_older = len(messages) > limit
    messages = messages[:limit]
    letters = {
        dl.message_id: dl
        for dl in DeadLetter.objects.filter(message__in=messages, resolved_at__isnull=True)
    }
    items = [_message_item(m, letters, can_resolve) for m in messages]
    since = messages[-1].created_at if has_older else None
    events = ConversationEvent.objects.filter(contact=contact).select_related("by")
    if since:
        events = events.filter(at__gte=since)
    items += [_event_item(e) for e in events]
    items.sort(key=lambda i: i["at"])
    conversation = Conversation.objects.filter(contact=contact).first()
    window = twilio_window(contact)
    return {
        "items": items,
        "has_older": has_older,
        "state": {
            "paused": bool(conversation and conversation.bot_paused),
            "paused_why": conversation.get_paused_why_display() if conversation and conversation.bot_paused else "",
            "needs_human": bool(conversation and conversation.needs_human),
            "opted_out": bool(conversation and conversation.opted_out),
        },
        "window": {
            "applies": window.applies,
            "open": window.open,
            "closes_at": window.closes_at.isoformat() if window.closes_at else None,
            "template_sid": window.template_sid,
            # Offered in the reply form while the window is closed.
            "templates": [{"id": t.pk, "name": t.name, "text": t.text} for t in templates_of(contact.tenant)]
            if window.blocks_free_text else [],
        },
    }
