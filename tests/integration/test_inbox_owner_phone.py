"""The owner answers a customer from the phone itself, end to end on real parts: the
lifecycle worker runs the real sidecar (sandbox transport), the sidecar forwards the
owner's fromMe message to Django's signed owner webhook over HTTP, real ai/send workers
answer through the sidecar. The sandbox echoes every message the sidecar sends back as a
fromMe upsert, as WhatsApp does, so these tests also prove the bot's own sends are never
taken for the owner's."""

from __future__ import annotations

import time

import pytest

from tests.support.baileys import HOURS_ANSWER, connect
from tests.support.waiting import wait_for
from whatsapp.inbox.models import Conversation, ConversationEvent, PauseReason
from whatsapp.models import Contact, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CUSTOMER = "15551234567"


def owner_types_on_the_phone(sandbox, text: str, to: str = CUSTOMER) -> str:
    """The sandbox's simulated phone: the owner writes to a customer outside this system."""
    response = sandbox.http.post(f"{sandbox.base}/sandbox/acme/owner-message", json={"to": to, "text": text}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def customer_writes(sandbox, text: str) -> None:
    sandbox.inbound("acme", **{"from": CUSTOMER, "text": text, "pushName": "Dana"})


def bot_answers(sandbox) -> list[str]:
    return [s["text"] for s in sandbox.sent("acme") if not s.get("failed")]


def test_the_owner_typing_on_the_phone_pauses_the_bot_and_the_customer_next_message_gets_no_bot_reply(
    baileys_tenant, sandbox, lifecycle_worker, start_worker
):
    lifecycle_worker()
    start_worker()
    connect("acme")

    customer_writes(sandbox, "What are your opening hours?")
    wait_for(lambda: bot_answers(sandbox) == [HOURS_ANSWER], 20, message="the bot's answer on the customer's phone")

    message_id = owner_types_on_the_phone(sandbox, "Hi Dana, Maria here, I'll take it from here")

    conversation = wait_for(lambda: Conversation.objects.filter(bot_paused=True).first(), 20,
                            message="the bot paused by the owner's message")
    assert conversation.paused_why == PauseReason.OWNER_PHONE
    owner = Message.objects.get(engine="phone")
    assert (owner.provider_message_id, owner.body, owner.direction) == (
        message_id, "Hi Dana, Maria here, I'll take it from here", Direction.OUTBOUND,
    )
    assert ConversationEvent.objects.filter(kind=ConversationEvent.Kind.OWNER_REPLIED).count() == 1
    # The owner's own name and LID (Baileys' pushName and remoteJidAlt of a fromMe message)
    # did not land on the customer's contact.
    contact = Contact.objects.get(tenant=baileys_tenant)
    assert (contact.name, contact.phone, contact.lid_jid) == ("Dana", "+15551234567", "")

    customer_writes(sandbox, "Are you open on Saturday?")
    waiting = wait_for(
        lambda: Message.objects.filter(direction=Direction.INBOUND, body="Are you open on Saturday?",
                                       status=Status.WAITING).first(),
        20, message="the customer's next message held for the owner",
    )
    time.sleep(2)  # long enough for an ai + send worker round trip
    assert bot_answers(sandbox) == [HOURS_ANSWER], "no bot reply while the owner talks"
    waiting.refresh_from_db()
    assert waiting.status == Status.WAITING


def test_the_bot_own_sends_echoed_back_by_whatsapp_never_pause_it(
    baileys_tenant, sandbox, lifecycle_worker, start_worker
):
    lifecycle_worker()
    start_worker()
    connect("acme")

    for n, question in enumerate(["What are your opening hours?", "Sorry, when are you open?", "open tomorrow?"], 1):
        customer_writes(sandbox, question)
        wait_for(lambda n=n: len(bot_answers(sandbox)) == n, 20, message=f"bot answer {n}")
    time.sleep(2)  # the echoes went through the sidecar; any owner webhook would have landed

    assert bot_answers(sandbox) == [HOURS_ANSWER] * 3
    assert not Conversation.objects.filter(bot_paused=True).exists()
    assert not Message.objects.filter(engine="phone").exists()
    assert not ConversationEvent.objects.exists()
