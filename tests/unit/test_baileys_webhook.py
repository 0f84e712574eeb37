"""The sidecar's inbound webhook and customers WhatsApp shows only by a LID. The sidecar
never retries a 4xx (it moves the event to spool/rejected), so every real message must
be accepted."""

from __future__ import annotations

import pytest

from tests.support.baileys_webhooks import inbound, post_signed
from whatsapp.models import Contact, Message

pytestmark = pytest.mark.django_db

def test_a_sender_known_only_by_lid_is_accepted_and_stored_by_that_lid(client, tenant):
    response = post_signed(client, inbound(**{"from": None, "fromJid": "98765432101234@lid"}))

    assert response.status_code == 200
    contact = Contact.objects.get(tenant=tenant)
    assert (contact.phone, contact.lid_jid, contact.wa_jid) == ("", "98765432101234@lid", "")
    assert Message.objects.get().contact == contact


def test_two_messages_from_one_lid_belong_to_one_contact(client, tenant):
    post_signed(client, inbound(**{"from": None, "fromJid": "98765432101234@lid"}))
    post_signed(client, inbound(**{"from": None, "fromJid": "98765432101234@lid", "text": "again"}))
    assert Contact.objects.count() == 1
    assert Message.objects.count() == 2


def test_a_lid_contact_gains_its_phone_when_whatsapp_later_tells_it(client, tenant):
    post_signed(client, inbound(**{"from": None, "fromJid": "98765432101234@lid"}))
    post_signed(client, inbound(**{"from": "15551234567", "fromJid": "98765432101234@lid",
                                   "fromAltJid": "15551234567@s.whatsapp.net"}))
    contact = Contact.objects.get()
    assert (contact.phone, contact.lid_jid, contact.wa_jid) == (
        "+15551234567", "98765432101234@lid", "15551234567@s.whatsapp.net",
    )


def test_a_phone_chat_stores_the_phone_jid_and_the_alternative_lid(client, tenant):
    post_signed(client, inbound(fromAltJid="98765432101234@lid"))
    contact = Contact.objects.get()
    assert (contact.phone, contact.wa_jid, contact.lid_jid) == (
        "+15551234567", "15551234567@s.whatsapp.net", "98765432101234@lid",
    )


def test_a_message_with_neither_phone_nor_lid_is_refused(client, tenant):
    response = post_signed(client, inbound(**{"from": None, "fromJid": None}))
    assert response.status_code == 400
    assert Message.objects.count() == 0
