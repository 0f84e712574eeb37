"""Storing an inbound message (once, whatever the number of webhook deliveries) and
handing it to the bot after the transaction commits."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from bots.dispatch import schedule_reply
from project.logging import log_context
from whatsapp import metrics, pipeline
from whatsapp.inbound import one_statement
from whatsapp.media.tasks import record_media
from whatsapp.models import Contact, Direction, Message, Provider, Status, Tenant
from whatsapp.text import mask

log = logging.getLogger("whatsapp.inbound")


@dataclass
class Inbound:
    tenant: Tenant
    provider: str
    provider_message_id: str
    phone: str  # E.164; empty when WhatsApp gave only a LID (then lid_jid is set)
    body: str
    media_type: str = "text"
    name: str = ""
    wa_jid: str = ""
    lid_jid: str = ""
    # each attachment to fetch: Twilio's (url, content type), or an Attachment (whatsapp.media)
    media: list = dataclasses.field(default_factory=list)


def accept_inbound(inbound: Inbound, _again: bool = True) -> tuple[Message, bool]:
    """Store the message; return (message, created). A re-delivered webhook finds the
    stored message and enqueues nothing."""
    if inbound.provider == Provider.TWILIO and connection.vendor == "postgresql":
        return _accept_in_one_statement(inbound)
    existing = Message.objects.filter(
        provider=inbound.provider, provider_message_id=inbound.provider_message_id
    ).first()
    if existing:
        return _duplicate(existing, inbound.provider)
    try:
        with transaction.atomic():
            contact = _contact(inbound)
            message = Message.objects.create(
                tenant=inbound.tenant,
                contact=contact,
                direction=Direction.INBOUND,
                provider=inbound.provider,
                provider_message_id=inbound.provider_message_id,
                body=inbound.body,
                media_type=inbound.media_type,
                status=Status.RECEIVED,
            )
            if inbound.media:
                record_media(message, inbound.media)
            transaction.on_commit(lambda: _hand_to_bot(message, fetch_first=bool(inbound.media)))
    except IntegrityError:
        # Two deliveries of the same webhook raced; the other one stored it.
        existing = Message.objects.filter(
            provider=inbound.provider, provider_message_id=inbound.provider_message_id
        ).first()
        if existing is None and _again:
            # Or the contact was deleted (retention, erasure) after we found it: once more,
            # with a new contact.
            return accept_inbound(inbound, _again=False)
        if existing is None:
            raise
        return _duplicate(existing, inbound.provider)
    return _accepted(message, inbound)


def _accept_in_one_statement(inbound: Inbound) -> tuple[Message, bool]:
    """PostgreSQL, Twilio (a contact known by phone only): one statement stores it
    (whatsapp.inbound.one_statement); a message with media is stored with its media rows
    in one transaction."""
    now = timezone.now()
    fields = {
        "direction": Direction.INBOUND, "provider": inbound.provider, "provider_message_id": inbound.provider_message_id,
        "body": inbound.body, "media_type": inbound.media_type, "status": Status.RECEIVED, "created_at": now,
        # Drawn here, not by the statement: the Message handed on below carries the same.
        "correlation_id": uuid.uuid4(), "idempotency_key": uuid.uuid4(),
    }
    contact = {"tenant_id": inbound.tenant.pk, "phone": inbound.phone, "name": inbound.name,
               "last_twilio_inbound_at": now}
    with transaction.atomic() if inbound.media else contextlib.nullcontext():
        stored = one_statement.store(contact, {"tenant_id": inbound.tenant.pk, **fields}, now)
        if stored is None:
            existing = Message.objects.get(provider=inbound.provider, provider_message_id=inbound.provider_message_id)
            return _duplicate(existing, inbound.provider)
        message = Message(pk=stored[0], contact_id=stored[1], tenant=inbound.tenant, updated_at=now, **fields)
        message._state.adding = False
        if inbound.media:
            record_media(message, inbound.media)
        # Outside a transaction (no media) this runs at once: the statement has committed.
        transaction.on_commit(lambda: _hand_to_bot(message, fetch_first=bool(inbound.media)))
    return _accepted(message, inbound)


def _accepted(message: Message, inbound: Inbound) -> tuple[Message, bool]:
    metrics.INBOUND.labels(provider=inbound.provider).inc()
    with log_context(tenant=inbound.tenant.slug, message_id=message.pk, correlation_id=str(message.correlation_id)):
        log.info(
            "webhook accepted",
            # The masked number lets staff find one customer's messages in the logs.
            extra={"provider": inbound.provider, "media_type": inbound.media_type, "contact": mask(inbound.phone)},
        )
    return message, True


def _duplicate(message: Message, provider: str) -> tuple[Message, bool]:
    metrics.DUPLICATES.labels(provider=provider).inc()
    with log_context(message_id=message.pk, correlation_id=str(message.correlation_id)):
        log.info("duplicate webhook ignored", extra={"provider": provider})
    return message, False


def _contact(inbound: Inbound) -> Contact:
    """The contact by phone, else by LID; a LID-only contact gains its phone when a later
    message tells it."""
    contacts = Contact.objects.filter(tenant=inbound.tenant)
    contact = contacts.filter(phone=inbound.phone).first() if inbound.phone else None
    if contact is None and inbound.lid_jid:
        contact = contacts.filter(lid_jid=inbound.lid_jid).first()
    if contact is None:
        contact = _new_contact(inbound)
        if contact is not None:
            return contact
        contact = contacts.filter(phone=inbound.phone).first() if inbound.phone else None
        contact = contact or contacts.get(lid_jid=inbound.lid_jid)
    changed = []
    for field in ("phone", "name", "wa_jid", "lid_jid"):
        value = getattr(inbound, field)
        if not value or getattr(contact, field) == value:
            continue
        if field in ("phone", "lid_jid") and contacts.filter(**{field: value}).exclude(pk=contact.pk).exists():
            continue  # another contact holds it (unique); keep both as they are
        setattr(contact, field, value)
        changed.append(field)
    if inbound.provider == Provider.TWILIO:
        # Opens Twilio's 24-hour window for free-form replies from the Twilio number.
        contact.last_twilio_inbound_at = timezone.now()
        changed.append("last_twilio_inbound_at")
    if changed:
        contact.save(update_fields=changed)
    return contact


def _new_contact(inbound: Inbound) -> Contact | None:
    """Create the contact with everything we know in one INSERT; None if a concurrent
    webhook created it first."""
    try:
        with transaction.atomic():
            return Contact.objects.create(
                tenant=inbound.tenant, phone=inbound.phone, name=inbound.name, wa_jid=inbound.wa_jid,
                lid_jid=inbound.lid_jid,
                last_twilio_inbound_at=timezone.now() if inbound.provider == Provider.TWILIO else None,
            )
    except IntegrityError:
        return None


def _hand_to_bot(message: Message, fetch_first: bool = False) -> None:
    with log_context(tenant=message.tenant.slug, correlation_id=str(message.correlation_id)):
        if fetch_first:
            # The media task hands the message to the bot once its media is ready.
            pipeline.enqueue_media(message.pk)
        else:
            schedule_reply(message)
