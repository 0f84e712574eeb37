"""Handoff through real workers: the customer asks for a person (one "a person will
answer", then the bot is quiet and the conversation needs a human); the owner answers from
the phone (the sidecar's signed owner webhook pauses the bot); and the bot takes over
again after the tenant's idle time without a staff reply (the beat task)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tests.support.inbox import PHONE, customer_writes, inbound
from tests.support.waiting import wait_for
from whatsapp.inbound.signatures import sidecar_signature
from whatsapp.inbox import state
from whatsapp.inbox.models import Conversation, ConversationEvent, InboxSettings, PauseReason
from whatsapp.models import Contact, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]



def post_owner_message(client, payload: dict):
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    return client.post(
        "/webhooks/baileys/acme/owner/", data=body, content_type="application/json",
        HTTP_X_SIDECAR_TIMESTAMP=timestamp,
        HTTP_X_SIDECAR_SIGNATURE=sidecar_signature(settings.SIDECAR_WEBHOOK_SECRET, timestamp, body),
    )


def test_a_customer_asking_for_a_person_gets_one_answer_and_then_waits_for_staff(
    client, tenant, twilio, start_worker
):
    InboxSettings.objects.create(tenant=tenant, handoff_keywords="human, Mensch",
                                 handoff_reply="Someone from the bakery will answer you shortly.")
    start_worker()

    customer_writes(client, "Can I talk to a HUMAN please?")
    sent = wait_for(lambda: twilio.sent_to(PHONE), 20, message="the handoff answer")
    assert [s["body"] for s in sent] == ["Someone from the bakery will answer you shortly."]
    conversation = wait_for(lambda: Conversation.objects.filter(needs_human=True, bot_paused=True).first(), 10)
    assert conversation.paused_why == PauseReason.HANDOFF

    customer_writes(client, "human!!")
    wait_for(lambda: inbound("human!!").status == Status.WAITING, 20, message="the second ask held for staff")
    time.sleep(1)
    assert len(twilio.sent_to(PHONE)) == 1, "the bot says so once"
    kinds = list(ConversationEvent.objects.values_list("kind", flat=True))
    assert kinds == ["paused", "handoff"]


def test_a_word_that_only_contains_a_keyword_is_not_a_handoff(client, tenant, twilio, start_worker):
    start_worker()
    customer_writes(client, "Do you sell personalised cakes?")  # "person" inside a word
    wait_for(lambda: twilio.sent_to(PHONE), 20)
    assert not Conversation.objects.filter(bot_paused=True).exists()


def test_the_owner_answering_from_the_phone_pauses_the_bot(client, tenant, twilio, start_worker):
    start_worker()
    customer_writes(client, "hello")
    wait_for(lambda: twilio.sent_to(PHONE), 20, message="the bot's first answer")

    response = post_owner_message(client, {"id": "3EB0OWNER1", "from": PHONE,
                                           "fromJid": "15551234567@s.whatsapp.net", "text": "Hi Dana, it's Maria!"})
    assert response.status_code == 200 and response.json()["paused"] is True
    # The same forward again (the sidecar retries until acknowledged) changes nothing.
    assert post_owner_message(client, {"id": "3EB0OWNER1", "from": PHONE, "text": "Hi Dana, it's Maria!"}).json() == {
        "ok": True, "paused": False}

    customer_writes(client, "Maria! how are you?")
    wait_for(lambda: inbound("Maria! how are you?").status == Status.WAITING, 20, message="held for the owner")
    time.sleep(1)
    assert len(twilio.sent_to(PHONE)) == 1
    owner = Message.objects.get(engine="phone")
    assert owner.body == "Hi Dana, it's Maria!" and owner.direction == Direction.OUTBOUND
    assert Conversation.objects.get().paused_why == PauseReason.OWNER_PHONE


def test_a_message_this_system_sent_is_not_taken_for_the_owners(client, tenant):
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    Message.objects.create(tenant=tenant, contact=contact, direction=Direction.OUTBOUND, status=Status.SENT,
                           provider="baileys", provider_message_id="3EB0BOT", body="bot answer")
    response = post_owner_message(client, {"id": "3EB0BOT", "from": PHONE, "text": "bot answer"})
    assert response.json()["paused"] is False
    assert not Conversation.objects.filter(bot_paused=True).exists()


def test_an_unsigned_owner_message_is_refused_and_nothing_changes(client, tenant):
    response = client.post("/webhooks/baileys/acme/owner/", data=b'{"id": "x", "from": "+15551234567", "text": "hi"}',
                           content_type="application/json")
    assert response.status_code == 403
    assert not Message.objects.exists() and not Conversation.objects.exists()


def test_the_bot_resumes_after_the_idle_time_and_answers_what_waited(client, tenant, twilio, start_worker):
    InboxSettings.objects.create(tenant=tenant, resume_after_minutes=30)
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    state.pause(contact, PauseReason.STAFF)
    Conversation.objects.filter(contact=contact).update(paused_at=timezone.now() - timedelta(minutes=31))
    start_worker()
    customer_writes(client, "anyone there?")
    wait_for(lambda: inbound("anyone there?").status == Status.WAITING, 20)
    assert twilio.sent_to(PHONE) == []

    start_worker(queues="default", beat=True, INBOX_RESUME_INTERVAL_SECONDS=1)

    wait_for(lambda: twilio.sent_to(PHONE), 30, message="the bot's answer after the idle resume")
    assert not Conversation.objects.get(contact=contact).bot_paused
    assert ConversationEvent.objects.filter(kind="resumed", note="no staff reply for 30 min").exists()


def test_a_recent_staff_reply_keeps_the_bot_paused(tenant):
    from whatsapp.inbox.tasks import idle_conversations

    InboxSettings.objects.create(tenant=tenant, resume_after_minutes=30)
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    state.pause(contact, PauseReason.STAFF)
    Conversation.objects.filter(contact=contact).update(
        paused_at=timezone.now() - timedelta(hours=3), last_staff_reply_at=timezone.now() - timedelta(minutes=5))
    assert idle_conversations() == []
