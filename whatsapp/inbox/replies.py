"""A staff reply from the inbox: an outbound Message like the bot's (same idempotency key,
claim, retry, failover, breaker and dead letter, through the same send task), with its
author. Replying takes the conversation over: the bot is paused so it does not talk over
staff, and the customer's waiting messages count as answered."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from whatsapp import pipeline
from whatsapp.inbox import state
from whatsapp.inbox.models import PauseReason, ReplyTemplate
from whatsapp.media.outbound import MediaRefused, Upload, attach, check_upload
from whatsapp.models import Contact, Direction, Message, Provider, Status
from whatsapp.outbound.providers.twilio import TWILIO_WINDOW

log = logging.getLogger("whatsapp.inbox")

MAX_BODY = 4000


class ReplyRefused(Exception):
    """The reply cannot be sent; the message says why, for staff."""


@dataclass
class Window:
    """Twilio's 24-hour customer-care window, as far as this conversation needs it."""

    applies: bool  # Twilio is one of the tenant's providers
    open: bool
    closes_at: datetime | None
    template_sid: str

    @property
    def blocks_free_text(self) -> bool:
        return self.applies and not self.open


def twilio_window(contact: Contact) -> Window:
    tenant = contact.tenant
    last = contact.last_twilio_inbound_at
    closes_at = last + TWILIO_WINDOW if last else None
    return Window(
        applies=Provider.TWILIO in tenant.provider_order(),
        open=bool(closes_at and closes_at > timezone.now()),
        closes_at=closes_at,
        template_sid=tenant.twilio_template_sid,
    )


def templates_of(tenant) -> list[ReplyTemplate]:
    return list(ReplyTemplate.objects.filter(tenant=tenant))


def send_staff_reply(contact: Contact, author, body: str, template: str | int | None = None,
                     upload=None) -> Message:
    """`template`: the id of one of the tenant's ReplyTemplates, sent instead of `body`
    (its ContentSid through Twilio, its text through the WhatsApp Web session).
    `upload`: a photo or document (Django's UploadedFile), `body` then its caption."""
    chosen = None
    if template:
        chosen = ReplyTemplate.objects.filter(tenant=contact.tenant, pk=str(template)).first() \
            if str(template).isdigit() else None
        if chosen is None:
            raise ReplyRefused("No such template for this business.")
        body = chosen.text
    body = (body or "").strip()
    if not body and upload is None:
        raise ReplyRefused("Write a message first.")
    if len(body) > MAX_BODY:
        raise ReplyRefused(f"At most {MAX_BODY} characters.")
    try:
        media = check_upload(upload) if upload is not None else None
    except MediaRefused as exc:
        raise ReplyRefused(str(exc)) from None
    window = twilio_window(contact)
    only_twilio = contact.tenant.provider_order() == [Provider.TWILIO]
    if only_twilio and window.blocks_free_text and not (chosen or window.template_sid):
        raise ReplyRefused("Twilio's 24-hour window is closed and the tenant has no template: "
                           "the customer must write first.")
    with transaction.atomic():
        conversation = state._locked(contact)
        if conversation.opted_out:
            raise ReplyRefused("The customer opted out: nothing can be sent until they write START.")
        if not conversation.bot_paused:
            state.pause(contact, PauseReason.STAFF, by=author, note=f"{author} replied")
        # The chosen template goes with the message: delivery sends it when the window is closed.
        reply = create_outbound(contact, body, "staff", author=author, media=media,
                                template_sid=chosen.content_sid if chosen else "")
        Message.objects.filter(
            contact=contact, direction=Direction.INBOUND, status__in=[Status.WAITING, Status.RECEIVED]
        ).update(status=Status.ANSWERED, updated_at=timezone.now())
        conversation.refresh_from_db()
        conversation.last_staff_reply_at = timezone.now()
        conversation.needs_human = False
        conversation.away_sent_at = None
        conversation.save(update_fields=["last_staff_reply_at", "needs_human", "away_sent_at"])
    return reply


def create_outbound(contact: Contact, body: str, engine: str, author=None, media: Upload | None = None,
                    template_sid: str = "") -> Message:
    """A message to the customer that answers no message of theirs in particular (a staff
    reply, the away message), sent after commit by the ordinary send task. With `media`,
    the file goes with it and `body` is its caption."""
    message = Message.objects.new_outbound(tenant=contact.tenant, contact=contact, body=body, author=author,
                                           engine=engine, media_type=media.kind if media else "text",
                                           template_sid=template_sid)
    if media is not None:
        attach(message, media)
    pipeline.enqueue_send_on_commit(message.pk)
    return message

