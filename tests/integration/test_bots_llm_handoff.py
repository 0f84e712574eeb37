"""The LLM engine may decide to hand off: it is offered a function (Chat Completions
`tools`) and, when the model calls it, the bot does what a handoff keyword does: the
tenant's handoff answer once, the bot paused, the conversation flagged "needs a human"
(inbox, dashboard gauge). Against the fake OpenAI-compatible server, which speaks the API's
tool-calling format and refuses malformed tools as the API does."""

from __future__ import annotations

import time

import pytest
import requests
from django.db import transaction

from bots.engines.llm import HAND_OFF, LLMEngine, config_for
from bots.llm_client import LLMError, complete
from bots.tasks import generate_reply
from bots.trial import ask
from tests.fakes.llm_server import ToolCall, default_answer
from tests.support.inbox import PHONE
from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for
from whatsapp.inbox.metrics import InboxCollector, needs_human_count
from whatsapp.inbox.models import Conversation, ConversationEvent, InboxSettings, PauseReason
from whatsapp.models import Contact, Direction, Message, Status

pytestmark = pytest.mark.django_db

HANDOFF_ANSWER = "Someone from the bakery will answer you shortly."


@pytest.fixture
def shop(tenant, llm, settings):
    settings.LLM_TIMEOUT = 0.5
    settings.LLM_DEADLINE = 2.0
    tenant.bot_engine = "llm"
    tenant.save()
    InboxSettings.objects.create(tenant=tenant, handoff_reply=HANDOFF_ANSWER)
    return tenant


def complaints_go_to_a_person(body: dict):
    """The fake model: a complaint makes it call the handoff function; anything else it answers."""
    last = body["messages"][-1]["content"]
    return ToolCall(HAND_OFF, {"reason": "the customer complains"}) if "refund" in last else default_answer(body)


def writes(tenant, body: str) -> Message:
    contact, _ = Contact.objects.get_or_create(tenant=tenant, phone=PHONE)
    return Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, body=body,
                                  status=Status.RECEIVED)


def test_the_model_is_offered_the_handoff_function_and_its_call_pauses_the_bot_with_one_answer(shop, llm):
    llm.answer = complaints_go_to_a_person
    message = writes(shop, "The cake was stale, I want a refund")

    generate_reply(message.pk)

    offered = llm.bodies()[0]
    assert offered["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in offered["tools"]] == [HAND_OFF]
    answer = Message.objects.get(direction=Direction.OUTBOUND)
    assert (answer.body, answer.engine) == (HANDOFF_ANSWER, "handoff")
    conversation = Conversation.objects.get()
    assert conversation.bot_paused and conversation.needs_human
    assert conversation.paused_why == PauseReason.HANDOFF
    event = ConversationEvent.objects.get(kind=ConversationEvent.Kind.HANDOFF)
    assert event.note == "the AI model handed off"
    assert needs_human_count() == 1
    gauge = {f.name: f for f in InboxCollector().collect()}["whatsapp_conversations_needing_human"]
    assert [(s.labels["tenant"], s.value) for s in gauge.samples] == [("acme", 1)]

    later = writes(shop, "hello? refund please")
    generate_reply(later.pk)
    later.refresh_from_db()
    assert later.status == Status.WAITING, "held for staff"
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 1, "the bot says so once"
    assert len(llm.bodies()) == 1, "the model is not asked while the bot is paused"


def test_an_ordinary_answer_does_not_hand_off(shop, llm):
    llm.answer = complaints_go_to_a_person
    generate_reply(writes(shop, "When do you open?").pk)

    assert Message.objects.get(direction=Direction.OUTBOUND).body == "LLM answer to: When do you open?"
    assert not Conversation.objects.filter(bot_paused=True).exists()


def test_a_tenant_can_turn_the_handoff_function_off(shop, llm):
    InboxSettings.objects.filter(tenant=shop).update(llm_hands_off=False)
    llm.answer = complaints_go_to_a_person
    generate_reply(writes(shop, "I want a refund").pk)

    assert "tools" not in llm.bodies()[0] and "tool_choice" not in llm.bodies()[0]
    # Not offered, the model can only answer in text.
    assert Message.objects.get(direction=Direction.OUTBOUND).body == "LLM answer to: I want a refund"
    assert not Conversation.objects.filter(bot_paused=True).exists()


def test_staff_taking_over_while_the_model_decides_sends_nothing(shop, llm, admin_user, monkeypatch):
    import bots.tasks
    from whatsapp.inbox import state

    message = writes(shop, "refund now")
    llm.answer = complaints_go_to_a_person
    real_build_reply = bots.tasks.build_reply

    def staff_take_over_meanwhile(tenant, batch):
        answer = real_build_reply(tenant, batch)
        with transaction.atomic():  # staff press Take over while the model was answering
            state.pause(message.contact, PauseReason.STAFF, by=admin_user)
        return answer

    monkeypatch.setattr(bots.tasks, "build_reply", staff_take_over_meanwhile)
    generate_reply(message.pk)

    assert not Message.objects.filter(direction=Direction.OUTBOUND).exists()
    conversation = Conversation.objects.get()
    assert conversation.paused_why == PauseReason.STAFF and not conversation.needs_human


def test_a_broken_tool_call_is_not_a_usable_answer(shop, llm):
    """Arguments that are not a JSON object: retried like garbage, then LLMError (the
    caller falls back to the rules engine)."""
    config = config_for(shop)
    tool = {"type": "function", "function": {"name": "x", "parameters": {"type": "object"}}}
    llm.answer = lambda body: ToolCall("x", {"a": 1})
    assert complete(config, [{"role": "user", "content": "hi"}], tools=[tool]).tool_calls == ("x",)

    original = llm._tool_completion

    def broken(body, call):
        completion = original(body, call)
        completion["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "[1, 2"
        return completion

    llm._tool_completion = broken
    try:
        with pytest.raises(LLMError):
            complete(config, [{"role": "user", "content": "hi"}], tools=[tool])
    finally:
        del llm._tool_completion


def test_the_fake_refuses_malformed_tools_as_the_api_does(llm):
    def post(**extra):
        return requests.post(f"{llm.base_url}/chat/completions", timeout=5, json={
            "model": "m", "messages": [{"role": "user", "content": "hi"}], **extra})

    assert post(tool_choice="auto").status_code == 400
    assert post(tools=[{"type": "function", "function": {"name": "has space"}}]).status_code == 400
    assert post(tools=[{"type": "function", "function": {"name": "ok", "parameters": {"type": "string"}}}]).status_code == 400
    assert post(tools=[{"type": "function", "function": {"name": "ok"}}], tool_choice="auto").status_code == 200


def test_the_admin_test_page_shows_the_handoff_answer(shop, llm):
    llm.answer = complaints_go_to_a_person
    result = ask(shop, "I want a refund")
    assert result["text"] == HANDOFF_ANSWER
    assert result["engine"] == "handoff (the model handed off)"
    assert not Conversation.objects.exists(), "a test question pauses nobody"


def test_llm_engine_reply_carries_the_decision(shop, llm):
    llm.answer = complaints_go_to_a_person
    contact = Contact.objects.create(tenant=shop, phone="+15550009999")
    message = Message(tenant=shop, contact=contact, direction=Direction.INBOUND, body="refund", status=Status.RECEIVED)
    assert LLMEngine().reply(shop, [message], []).handoff is True
    message.body = "hi"
    assert LLMEngine().reply(shop, [message], []).handoff is False


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_through_real_workers_the_model_hands_off_once_and_the_customer_then_waits_for_staff(
    client, tenant, twilio, llm, start_worker
):
    tenant.bot_engine = "llm"
    tenant.save()
    InboxSettings.objects.create(tenant=tenant, handoff_reply=HANDOFF_ANSWER)
    llm.answer = complaints_go_to_a_person
    start_worker(LLM_BASE_URL=llm.base_url)

    assert post_twilio(client, "/webhooks/twilio/acme/", twilio_form(Body="Stale cake! I want a refund")).status_code == 200
    sent = wait_for(lambda: twilio.sent_to(PHONE), 20, message="the handoff answer")
    assert [s["body"] for s in sent] == [HANDOFF_ANSWER]
    wait_for(lambda: Conversation.objects.filter(needs_human=True, bot_paused=True).exists(), 10)

    assert post_twilio(client, "/webhooks/twilio/acme/", twilio_form(Body="still waiting for my refund")).status_code == 200
    wait_for(lambda: Message.objects.filter(body="still waiting for my refund", status=Status.WAITING).exists(), 20,
             message="the next message held for staff")
    time.sleep(1)
    assert len(twilio.sent_to(PHONE)) == 1
    assert len(llm.bodies()) == 1


def test_a_model_server_without_tool_support_still_answers(shop, llm):
    llm.tools_supported = False  # refuses any request with tools (400), as Ollama does
    llm.answer = complaints_go_to_a_person
    generate_reply(writes(shop, "When do you open?").pk)

    bodies = llm.bodies()
    assert ["tools" in b for b in bodies] == [True, False], "asked again without the function"
    answer = Message.objects.get(direction=Direction.OUTBOUND)
    assert (answer.body, answer.engine) == ("LLM answer to: When do you open?", "llm")
