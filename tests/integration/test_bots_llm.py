"""The LLM engine against a local fake OpenAI-compatible server: what the model is told
(system prompt, business facts, memory, the new messages), what happens when it fails
(every failure ends in an answer), per-tenant settings and the API key. The admin's
"test the bot" page: tests/integration/test_bots_test_page.py; tenant URLs and keys:
tests/unit/test_bots_tenant_llm.py."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from bots.models import Rule
from bots.tasks import generate_reply
from tests.fakes.llm_server import FakeLLM
from whatsapp.models import Contact, Direction, Message, Status, Tenant

pytestmark = pytest.mark.django_db

KEY = "sk-test-SECRET-4242"


@pytest.fixture
def shop(tenant, llm, settings):
    settings.LLM_API_KEY = KEY
    settings.LLM_TIMEOUT = 0.5
    settings.LLM_DEADLINE = 2.0
    tenant.bot_engine = "llm"
    tenant.system_prompt = "You are the assistant of Acme Bakery."
    tenant.business_facts = "Open 8-18 Sunday to Friday. Gluten-free bread on Tuesdays."
    tenant.save()
    return tenant


@pytest.fixture
def contact(tenant):
    return Contact.objects.create(tenant=tenant, phone="+15551234567")


class Chat:
    """Writes a conversation with increasing timestamps, oldest first."""

    def __init__(self, tenant, contact):
        self.tenant, self.contact = tenant, contact
        self.at = timezone.now() - timedelta(hours=1)

    def _add(self, **fields) -> Message:
        self.at += timedelta(seconds=10)
        return Message.objects.create(tenant=self.tenant, contact=self.contact, created_at=self.at, **fields)

    def said(self, body: str) -> Message:
        return self._add(direction=Direction.INBOUND, body=body, status=Status.ANSWERED)

    def answered(self, body: str, status: str = Status.SENT) -> Message:
        return self._add(direction=Direction.OUTBOUND, body=body, status=status)

    def writes(self, body: str = "", media_type: str = "text") -> Message:
        return self._add(direction=Direction.INBOUND, body=body, status=Status.RECEIVED, media_type=media_type)


def the_reply() -> Message:
    return Message.objects.get(direction=Direction.OUTBOUND, status=Status.QUEUED)


def test_the_model_gets_the_system_prompt_facts_history_in_order_and_the_new_messages(shop, contact, llm):
    chat = Chat(shop, contact)
    chat.said("Hi")
    chat.answered("Hello! How can we help you today?")
    chat.said("Do you bake bread?")
    chat.answered("Yes, every morning.")
    first = chat.writes("And gluten-free?")
    last = chat.writes("for Tuesday")

    generate_reply(last.pk)

    (request,) = llm.bodies()
    assert request["messages"] == [
        {"role": "system", "content": "You are the assistant of Acme Bakery.\n\nBusiness facts:\n"
                                      "Open 8-18 Sunday to Friday. Gluten-free bread on Tuesdays."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can we help you today?"},
        {"role": "user", "content": "Do you bake bread?"},
        {"role": "assistant", "content": "Yes, every morning."},
        {"role": "user", "content": "And gluten-free?\nfor Tuesday"},
    ]
    reply = the_reply()
    assert reply.body == "LLM answer to: And gluten-free?\nfor Tuesday"
    assert reply.engine == "llm" and reply.engine_latency_ms is not None
    assert reply.in_reply_to == last
    first.refresh_from_db()
    last.refresh_from_db()
    assert first.status == last.status == Status.ANSWERED


def test_memory_keeps_the_latest_messages_that_fit_the_character_budget(shop, contact, llm, settings):
    settings.BOT_MEMORY_MESSAGES = 4
    settings.BOT_MEMORY_CHARS = 25
    chat = Chat(shop, contact)
    chat.said("one: the oldest question")
    chat.answered("two: an old answer")
    chat.said("three: 16 chars")  # 15 characters
    chat.answered("lost", status=Status.DISCARDED)  # never reached the customer
    chat.answered("four: 1 answer")  # 14 characters: with "three" it is over budget
    chat.said("five: 9 c")  # 9 characters
    new = chat.writes("six")

    generate_reply(new.pk)

    sent = [m["content"] for m in llm.bodies()[0]["messages"][1:]]
    assert sent == ["four: 1 answer", "five: 9 c", "six"]


def test_a_photo_alone_gets_the_non_text_answer_without_asking_the_model(shop, contact, llm):
    shop.non_text_reply = "We can only read text here, sorry!"
    shop.save()
    photo = Chat(shop, contact).writes(media_type="image")

    generate_reply(photo.pk)

    reply = the_reply()
    assert (reply.body, reply.engine) == ("We can only read text here, sorry!", "non_text")
    assert llm.bodies() == []


def test_a_photo_with_a_question_is_named_to_the_model(shop, contact, llm):
    chat = Chat(shop, contact)
    chat.writes("this one", media_type="image")
    question = chat.writes("how much is this cake?")

    generate_reply(question.pk)

    assert llm.bodies()[0]["messages"][-1]["content"] == "[image from the customer: this one]\nhow much is this cake?"
    assert the_reply().engine == "llm"


@pytest.mark.parametrize("fault", ["429", "500", "503", "hang", "garbage", "no_choices", "empty"])
def test_a_failing_model_still_answers_with_the_fallback(fault, shop, contact, llm):
    llm.fail_always = fault
    llm.retry_after = "0.3"
    llm.hang_seconds = 3
    Rule.objects.create(tenant=shop, pattern="hours", answer="We are open 8-18.")
    message = Chat(shop, contact).writes("what are your hours?")

    started = time.monotonic()
    generate_reply(message.pk)
    took = time.monotonic() - started

    reply = the_reply()
    assert (reply.body, reply.engine) == ("We are open 8-18.", "fallback")
    assert len(llm.bodies()) >= 2, "a transient failure is retried"
    assert took < 2.0 + 1.0, "retries stop at LLM_DEADLINE"


def test_a_rate_limit_is_waited_out_as_retry_after_says(shop, contact, llm):
    llm.inject("429")
    llm.retry_after = "1"
    message = Chat(shop, contact).writes("hello?")

    generate_reply(message.pk)

    assert the_reply().engine == "llm"
    first, second = llm.requests
    assert second["at"] - first["at"] >= 1.0


def test_a_transient_failure_then_success_gives_the_model_answer(shop, contact, llm):
    llm.inject("500", "garbage")
    message = Chat(shop, contact).writes("hello?")

    generate_reply(message.pk)

    assert the_reply().body == "LLM answer to: hello?"
    assert len(llm.requests) == 3


def test_a_refused_api_key_is_not_retried(shop, contact, llm):
    llm.api_key = "sk-the-right-one"
    shop.fallback_reply = "We will get back to you."
    shop.save()
    message = Chat(shop, contact).writes("is the shop open?")

    generate_reply(message.pk)

    assert (the_reply().body, the_reply().engine) == ("We will get back to you.", "fallback")
    assert len(llm.requests) == 1


def test_the_api_key_goes_in_a_bearer_header_and_never_into_logs(shop, contact, llm, caplog):
    caplog.set_level(logging.DEBUG)
    chat = Chat(shop, contact)
    ok = chat.writes("first")
    generate_reply(ok.pk)
    llm.api_key = "sk-another"  # now the key is refused: the error path logs too
    generate_reply(chat.writes("second").pk)

    assert llm.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert "engine llm failed" in caplog.text and "HTTP 401: the API key was refused" in caplog.text
    assert KEY not in caplog.text
    assert all(KEY not in repr(record.__dict__) for record in caplog.records)


def test_tenant_llm_settings_override_the_server_defaults(tenant, contact, llm, settings):
    settings.LLM_ALLOWED_INTERNAL_HOSTS = ["127.0.0.1"]  # the fakes listen on loopback
    settings.LLM_MODEL, settings.LLM_TEMPERATURE, settings.LLM_MAX_TOKENS = "server-model", 0.3, 300
    settings.LLM_API_KEY = "sk-server"
    other = FakeLLM().start()
    try:
        tenant.bot_engine = "llm"
        tenant.save()
        generate_reply(Chat(tenant, contact).writes("hi").pk)

        tenant.llm_base_url = other.base_url
        tenant.llm_model, tenant.llm_temperature, tenant.llm_max_tokens = "tenant-model", 0.9, 50
        tenant.llm_api_key = "sk-tenant"
        tenant.save()
        Message.objects.filter(direction=Direction.OUTBOUND).delete()
        generate_reply(Chat(tenant, contact).writes("hi again").pk)

        (default,) = llm.requests
        assert {k: default["json"][k] for k in ("model", "temperature", "max_tokens")} == {
            "model": "server-model", "temperature": 0.3, "max_tokens": 300}
        assert default["headers"]["Authorization"] == "Bearer sk-server"
        (own,) = other.requests
        assert {k: own["json"][k] for k in ("model", "temperature", "max_tokens")} == {
            "model": "tenant-model", "temperature": 0.9, "max_tokens": 50}
        assert own["headers"]["Authorization"] == "Bearer sk-tenant"
    finally:
        other.stop()


def test_a_tenant_created_with_engine_llm_is_answered_by_the_model(llm, settings):
    call_command("create_tenant", "deli", "--name", "Deli", "--twilio-number", "+14155238886", "--engine", "llm")
    deli = Tenant.objects.get(slug="deli")
    message = Chat(deli, Contact.objects.create(tenant=deli, phone="+15550001111")).writes("menu?")

    generate_reply(message.pk)

    assert the_reply().body == "LLM answer to: menu?"


def test_a_second_run_that_lost_part_of_its_batch_stores_nothing_and_redrives_the_rest(
        shop, contact, llm, redis_server):
    from bots.engines.base import Reply
    from bots.tasks import store_reply

    chat = Chat(shop, contact)
    m1, m2 = chat.writes("one"), chat.writes("two")
    m3 = chat.writes("three")  # arrived while the first answer was being generated

    assert store_reply([m1, m2], Reply("answer to one and two", "llm"), 5) is not None
    assert store_reply([m1, m2, m3], Reply("answer to one, two and three", "llm"), 5) is None

    assert [r.body for r in Message.objects.filter(direction=Direction.OUTBOUND)] == ["answer to one and two"]
    m3.refresh_from_db()
    assert m3.status == Status.RECEIVED
    assert redis_server.client().llen("ai") == 1, "the rest is handed to a fresh task"


def test_a_deadline_that_passes_while_waiting_to_retry_still_names_the_last_failure(llm):
    # Rate-limited with Retry-After: 1, and a deadline that ends about when that second
    # is over (the wait can run past it on a loaded machine): staff still read the cause.
    from bots.llm_client import LLMConfig, LLMError, complete

    llm.fail_always = "429"
    config = LLMConfig(base_url=llm.base_url, api_key="", model="m", temperature=0, max_tokens=50, timeout=5,
                       deadline=1.03)
    with pytest.raises(LLMError) as failed:
        complete(config, [{"role": "user", "content": "hi"}])
    assert "HTTP 429" in str(failed.value)
