"""Conversation memory: which earlier messages of this contact the engine sees."""

from __future__ import annotations

from django.conf import settings

from whatsapp.models import Direction, Message, Status

# Answers the customer never got are not part of the conversation.
_NOT_SAID = {Status.DEAD, Status.DISCARDED}


def conversation_before(batch: list[Message], limit: int | None = None, budget: int | None = None) -> list[Message]:
    """The last `limit` messages of the batch's contact other than the batch (both
    directions), oldest first, cut from the oldest end so that their text fits in `budget`
    characters. An answer stored after the batch's first message arrived (it was being
    generated meanwhile) is included: the customer has seen it by now."""
    if not batch:
        return []
    limit = settings.BOT_MEMORY_MESSAGES if limit is None else limit
    budget = settings.BOT_MEMORY_CHARS if budget is None else budget
    if limit <= 0 or budget <= 0:
        return []
    first = batch[0]
    rows = (
        Message.objects.filter(tenant_id=first.tenant_id, contact_id=first.contact_id)
        .exclude(direction=Direction.OUTBOUND, status__in=_NOT_SAID)
        .exclude(pk__in=[m.pk for m in batch if m.pk])
        .order_by("-created_at", "-pk")[:limit]
    )
    kept: list[Message] = []
    used = 0
    for message in rows:  # newest first: the most recent context matters most
        used += len(message_text(message))
        if used > budget:
            break
        kept.append(message)
    return list(reversed(kept))


def message_text(message: Message) -> str:
    """What the model reads for one message; media it cannot see is named, not dropped."""
    if message.media_type == "audio" and message.body:
        # whatsapp.media.tasks wrote the voice note's transcript into the body.
        return f"[voice note from the customer, transcribed: {message.body}]"
    if message.media_type and message.media_type != "text":
        caption = f": {message.body}" if message.body else ""
        return f"[{message.media_type} from the customer{caption}]"
    return message.body
