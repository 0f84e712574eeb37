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

from django.db import transaction
from django.utils import timezone

from bots.engines.base import Reply
from whatsapp.inbox import state
from whatsapp.inbox.hours import is_open
from whatsapp.inbox.models import Conversation, ConversationEvent, InboxSettings, PauseReason
from whatsapp.inbox.replies import create_outbound
from whatsapp.models import Message

BOT = "bot"
HOLD = "hold"
REPLY = "reply"


@dataclass
class Screen:
    """BOT: answer as usual; REPLY: answer with `reply` after `then()`; HOLD: keep the
    messages for staff, sending `reply` first if there is one (the away message)."""

    action: str
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
    conversation = Conversation.of(contact)
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
    if rules.outside_hours == "away" and not is_open(rules.opening_hours, rules.time_zone, timezone.now()):
        already_told = conversation is not None and conversation.away_sent_at is not None
        return Screen(HOLD, None if already_told else Reply(rules.away_message, "away"))
    if conversation and conversation.away_sent_at:
        Conversation.objects.filter(pk=conversation.pk).update(away_sent_at=None)  # open again: a new conversation
    return Screen(BOT)


def keep_for_staff(contact, batch: list[Message], notice: Reply | None) -> int:
    """Hold the batch for staff; send the away notice once (the first run to set
    away_sent_at sends it, under the contact's lock)."""
    with transaction.atomic():
        conversation = state._locked(contact)
        held = state.hold(batch)
        if notice is not None and conversation.away_sent_at is None:
            Conversation.objects.filter(pk=conversation.pk).update(away_sent_at=timezone.now())
            create_outbound(contact, notice.text, notice.engine)
    return held


def handoff_answer(tenant) -> Reply:
    return Reply(InboxSettings.of(tenant).handoff_reply, "handoff")


def model_hand_off(tenant, contact) -> Screen:
    """The LLM engine chose to hand off (bots.engines.llm): what a handoff keyword does."""
    return Screen(REPLY, handoff_answer(tenant), partial(_hand_off, contact, "the AI model handed off"))


def _hand_off(contact, note: str = "") -> None:
    state.pause(contact, PauseReason.HANDOFF, needs_human=True)
    state.record_event(contact, ConversationEvent.Kind.HANDOFF, note=note)
