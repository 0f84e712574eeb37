"""Opt-out learnt from a provider: Twilio refuses a number that unsubscribed (21610, the
customer wrote STOP to the sender), so the conversation is marked opted out like a STOP
written to the bot: nothing more from bot or staff until the customer writes START."""

from __future__ import annotations

import logging

from django.db.models import Exists, OuterRef

from whatsapp.inbox import state

log = logging.getLogger("whatsapp.inbox")

UNSUBSCRIBED_CODES = {"21610"}
OPTED_OUT_ERROR = "the customer opted out (STOP): nothing is sent until they write START"


def contact_opted_out() -> Exists:
    """Whether a message's contact opted out: an expression, read with the message (the
    send task's claim annotates it)."""
    from whatsapp.inbox.models import Conversation

    return Exists(Conversation.objects.filter(contact_id=OuterRef("contact_id"), opted_out=True))


def blocked_by_opt_out(message, opted_out: bool) -> bool:
    """A reply queued before the customer's STOP, or requeued from dead letters since,
    must not go out; only the opt-out confirmation itself does."""
    return message.engine != "opt_out" and opted_out


def note_permanent_refusal(message, code: str) -> None:
    if str(code) not in UNSUBSCRIBED_CODES:
        return
    if state.set_opted_out(message.contact, True, note=f"the provider refused: recipient unsubscribed ({code})"):
        log.warning("the provider says the customer unsubscribed: marked opted out",
                    extra={"message_id": message.pk, "contact_id": message.contact_id})
