"""What Django asks the session to show before a reply (whatsapp.outbound.presence): how
long "typing..." lasts (grows with the reply, capped, never longer than one pacing
interval) and which of the customer's messages are marked read (those since our previous
reply, through the session, in their chat)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from whatsapp.models import Contact, Direction, Message, Status
from whatsapp.outbound.answer_parts import part_key
from whatsapp.outbound.presence import presence_for, typing_seconds
from whatsapp.outbound.providers.base import OutgoingPart

pytestmark = pytest.mark.django_db


def test_typing_grows_with_the_answer_and_is_capped(settings):
    settings.PRESENCE_TYPING_BASE, settings.PRESENCE_TYPING_CHARS_PER_SECOND = 0.5, 30
    settings.PRESENCE_TYPING_MAX, settings.BAILEYS_PACING_MAX_WAIT = 4.0, 5.0
    assert typing_seconds(0, 6) == 0.5
    assert typing_seconds(30, 6) == 1.5
    assert typing_seconds(60, 6) > typing_seconds(30, 6)
    assert typing_seconds(4000, 6) == 4.0  # PRESENCE_TYPING_MAX
    assert typing_seconds(4000, 30) == 2.0  # one pacing interval at 30 sends a minute
    settings.BAILEYS_PACING_MAX_WAIT = 1.0
    assert typing_seconds(4000, 6) == 1.0


def _message(contact, direction, minutes_ago, provider="baileys", pmid=None, body="x"):
    return Message.objects.create(
        tenant=contact.tenant, contact=contact, direction=direction, body=body, provider=provider,
        status=Status.ANSWERED if direction == Direction.INBOUND else Status.QUEUED, provider_message_id=pmid,
        created_at=timezone.now() - timedelta(minutes=minutes_ago))


def _part(message, index=0):
    return OutgoingPart(message=message, to=message.contact.phone, text="We open at 8.", key=part_key(message, index))


def test_the_messages_since_our_last_reply_are_marked_read_in_their_chat(tenant):
    tenant.session_presence = True
    tenant.save()
    contact = Contact.objects.create(tenant=tenant, phone="+15551234567", lid_jid="98765@lid")
    _message(contact, Direction.INBOUND, 30, pmid="OLD")
    _message(contact, Direction.OUTBOUND, 20)
    _message(contact, Direction.INBOUND, 5, pmid="A")
    _message(contact, Direction.INBOUND, 4, provider="twilio", pmid="SMtwilio")  # not the session's
    _message(contact, Direction.INBOUND, 3, pmid="B")
    reply = _message(contact, Direction.OUTBOUND, 0)

    presence = presence_for(_part(reply))
    assert presence["read"] == [{"id": "A", "remoteJid": "98765@lid"}, {"id": "B", "remoteJid": "98765@lid"}]
    assert presence["typingMs"] == int(typing_seconds(len("We open at 8."), tenant.baileys_sends_per_minute) * 1000)
    # The second part of a long answer only types: the messages were read before the first.
    assert presence_for(_part(reply, 1))["read"] == []


def test_nothing_is_shown_when_the_switch_is_off(tenant):
    contact = Contact.objects.create(tenant=tenant, phone="+15551234567")
    _message(contact, Direction.INBOUND, 1, pmid="A")
    assert presence_for(_part(_message(contact, Direction.OUTBOUND, 0))) is None
