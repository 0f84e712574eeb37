"""What the bot does before it answers, from the conversation's state (whatsapp.inbox):
opted out customers get nothing until they write a start keyword; a stop keyword gets one
confirmation; a paused conversation is held for staff; a handoff keyword gets one "a
person will answer" and pauses the bot. Keywords are per tenant, matched without regard
to case or accents."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from bots.engines.base import Reply
from whatsapp.inbox import state
from whatsapp.inbox.models import Conversation, ConversationEvent, InboxSettings, PauseReason
from whatsapp.models import Message

BOT = "bot"
HOLD = "hold"
REPLY = "reply"


@dataclass
class Screen:
    action: str  # BOT: answer as usual; HOLD: keep for staff; REPLY: send `reply`, then `then()`
    reply: Reply | None = None
    then: Callable[[], object] | None = None


def fold(text: str) -> str:
    """Lowercase, accents dropped, punctuation to spaces: "¡Stóp!" -> "stop"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", plain).split())


def keywords(setting: str) -> list[str]:
    return [fold(w) for w in setting.split(",") if fold(w)]


def says_exactly(batch: list[Message], setting: str) -> bool:
    """A message of the batch is one of the keywords and nothing else (STOP, START)."""
    words = set(keywords(setting))
    return any(fold(m.body) in words for m in batch if m.media_type == "text")


def mentions(batch: list[Message], setting: str) -> bool:
    """A message of the batch contains one of the keywords as a word ("a human please")."""
    words = keywords(setting)
    return any(re.search(rf"\b{re.escape(w)}\b", fold(m.body)) for w in words for m in batch if m.media_type == "text")


def screen(tenant, contact, batch: list[Message]) -> Screen:
    conversation = Conversation.objects.filter(contact=contact).first()
    rules = InboxSettings.of(tenant)
    if conversation and conversation.opted_out:
        if says_exactly(batch, rules.start_keywords):
            return Screen(REPLY, Reply(rules.opt_in_reply, "opt_in"), partial(state.set_opted_out, contact, False))
        return Screen(HOLD)
    if says_exactly(batch, rules.stop_keywords):
        return Screen(REPLY, Reply(rules.opt_out_reply, "opt_out"), partial(state.set_opted_out, contact, True))
    if conversation and conversation.bot_paused:
        return Screen(HOLD)
    if rules.handoff_keywords and mentions(batch, rules.handoff_keywords):
        return Screen(REPLY, Reply(rules.handoff_reply, "handoff"), partial(_hand_off, contact))
    return Screen(BOT)


def _hand_off(contact) -> None:
    state.pause(contact, PauseReason.HANDOFF, needs_human=True)
    state.record_event(contact, ConversationEvent.Kind.HANDOFF)
