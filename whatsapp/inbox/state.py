"""Changing a conversation's state: pause and resume the bot, flag "needs a human", opt
out and in. Every change is one transaction that also writes the event shown in the
thread, and takes the contact's row lock, the same lock bots.tasks.store_reply takes: a
bot reply being stored and a take-over cannot interleave (the bot re-checks the pause
under that lock)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from project.compiled_query import CompiledRead
from whatsapp import pipeline
from whatsapp.inbox.models import Conversation, ConversationEvent, PauseReason
from whatsapp.models import Contact, Direction, Message, Status

log = logging.getLogger("whatsapp.inbox")

Kind = ConversationEvent.Kind


def conversation_of(contact: Contact) -> Conversation:
    conversation, _ = Conversation.objects.get_or_create(contact=contact)
    return conversation


def _locked(contact: Contact) -> Conversation:
    Contact.objects.select_for_update().filter(pk=contact.pk).first()
    conversation_of(contact)
    return Conversation.objects.select_for_update().get(contact=contact)


def _event(contact: Contact, kind: str, by=None, note: str = "") -> None:
    ConversationEvent.objects.create(contact=contact, kind=kind, by=by, note=note[:300])


@transaction.atomic
def pause(contact: Contact, why: str, by=None, note: str = "", needs_human: bool = False) -> bool:
    """Stop the bot answering this contact until staff hand back (or idle resume). Returns
    whether anything changed (pausing a paused conversation only updates its flag)."""
    conversation = _locked(contact)
    changed = not conversation.bot_paused
    if changed:
        conversation.bot_paused = True
        conversation.paused_why = why
        conversation.paused_by = by
        conversation.paused_at = timezone.now()
        _event(contact, Kind.PAUSED, by, note or PauseReason(why).label)
    if needs_human and not conversation.needs_human:
        conversation.needs_human = True
        changed = True
    conversation.save()
    log.info("bot paused for a contact", extra={"contact_id": contact.pk, "why": why})
    return changed


@transaction.atomic
def resume(contact: Contact, by=None, note: str = "") -> bool:
    """Hand the conversation back to the bot. Messages that waited for staff and got no
    staff answer are handed to the bot, which answers them now."""
    conversation = _locked(contact)
    if not conversation.bot_paused:
        return False
    conversation.bot_paused = False
    conversation.paused_why = ""
    conversation.paused_by = None
    conversation.paused_at = None
    conversation.needs_human = False
    conversation.save()
    _event(contact, Kind.RESUMED, by, note)
    if not conversation.opted_out:
        _hand_waiting_to_bot(contact)
    return True


def _hand_waiting_to_bot(contact: Contact) -> None:
    waiting = Message.objects.filter(contact=contact, direction=Direction.INBOUND, status=Status.WAITING)
    newest = waiting.order_by("-created_at", "-pk").first()
    if newest is None:
        return
    waiting.update(status=Status.RECEIVED, updated_at=timezone.now())
    newest_id = newest.pk

    pipeline.enqueue_reply_on_commit(newest_id)


@transaction.atomic
def set_opted_out(contact: Contact, opted_out: bool, note: str = "") -> bool:
    conversation = _locked(contact)
    if conversation.opted_out == opted_out:
        return False
    conversation.opted_out = opted_out
    conversation.opted_out_at = timezone.now() if opted_out else None
    conversation.save()
    _event(contact, Kind.OPTED_OUT if opted_out else Kind.OPTED_IN, note=note)
    return True


def record_event(contact: Contact, kind: str, by=None, note: str = "") -> None:
    _event(contact, kind, by, note)


def bot_held(contact_id: int) -> bool:
    """Whether the bot must not answer this contact now (paused, or opted out)."""
    return _HELD.get(contact_id) is not None


# Read before every stored answer, under the contact's lock (issue 16: compiled once).
_HELD = CompiledRead(lambda contact_id: Conversation.objects.filter(contact_id=contact_id).filter(
    Q(bot_paused=True) | Q(opted_out=True)).only("pk")[:1])


def hold(messages: list[Message]) -> int:
    """Keep these customer messages for staff: stored, not answered by the bot."""
    return Message.objects.filter(pk__in=[m.pk for m in messages], status=Status.RECEIVED).update(
        status=Status.WAITING, updated_at=timezone.now()
    )


def mark_read(contact: Contact, at=None) -> None:
    Conversation.objects.filter(contact=contact).update(staff_read_at=at or timezone.now())
