"""Debounce and concurrency end to end on real parts: signed Twilio webhooks into real
Django, two real `ai` worker processes on a real Redis, the fake OpenAI-compatible API,
and the replies arriving at the fake Twilio API."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for
from whatsapp.models import Contact, Direction, Message, Status
from whatsapp.tasks import reconcile_outbound

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PATH = "/webhooks/twilio/acme/"
PHONE = "+15551234567"
KEY = "sk-test-SECRET-debounce-77"


@pytest.fixture
def shop(tenant, llm):
    llm.api_key = KEY  # the fake refuses any other key, like the real APIs
    tenant.bot_engine = "llm"
    tenant.llm_base_url = llm.base_url
    tenant.llm_api_key = KEY
    tenant.debounce_seconds = 1.5
    tenant.save()
    return tenant


def start_two_ai_workers(start_worker, **env):
    """Two worker processes that both take `ai` tasks (and between them send and default).
    The tenant's URL is the fake LLM on loopback, which the operator must allow."""
    env.setdefault("LLM_ALLOWED_INTERNAL_HOSTS", "127.0.0.1")
    return [start_worker("ai,send", 2, **env), start_worker("ai,default", 2, **env)]


def outbound() -> list[Message]:
    return list(Message.objects.filter(direction=Direction.OUTBOUND).order_by("created_at"))


def test_three_quick_messages_get_one_answer_that_considers_all_of_them(client, shop, twilio, llm, start_worker):
    workers = start_two_ai_workers(start_worker)

    # Each message comes 1 s after the previous one, inside the 1.5 s window: the window
    # restarts with every message, so the first task (due at 1.5 s) must not answer yet.
    for body in ("Hi", "do you have", "gluten-free bread?"):
        assert post_twilio(client, PATH, twilio_form(Body=body)).status_code == 200
        time.sleep(1.0)

    sent = wait_for(lambda: twilio.sent_to(PHONE), 20, message="the reply at Twilio")
    time.sleep(shop.debounce_seconds + 1.5)  # give a second answer every chance to show up
    assert len(twilio.sent_to(PHONE)) == 1
    assert sent[0]["body"] == "LLM answer to: Hi\ndo you have\ngluten-free bread?"
    assert len(llm.requests) == 1
    assert llm.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    (reply,) = outbound()
    assert reply.engine == "llm" and reply.in_reply_to.body == "gluten-free bread?"
    assert set(Message.objects.filter(direction=Direction.INBOUND).values_list("status", flat=True)) == {
        Status.ANSWERED}
    for worker in workers:
        assert KEY not in worker.output()


def test_a_message_written_while_the_answer_is_generated_is_answered_once_by_the_next_reply(
        client, shop, twilio, llm, start_worker):
    shop.debounce_seconds = 0.5
    shop.save()
    llm.delay_seconds = 2.5  # a slow model
    start_two_ai_workers(start_worker)

    post_twilio(client, PATH, twilio_form(Body="Do you deliver?"))
    wait_for(lambda: llm.requests, 10, message="the model working on the first answer")
    post_twilio(client, PATH, twilio_form(Body="to Haifa"))

    wait_for(lambda: len(twilio.sent_to(PHONE)) >= 2, 30, message="two replies")
    time.sleep(2)
    bodies = [m["body"] for m in twilio.sent_to(PHONE)]
    assert bodies == ["LLM answer to: Do you deliver?", "LLM answer to: to Haifa"]
    first, second = outbound()
    assert (first.in_reply_to.body, second.in_reply_to.body) == ("Do you deliver?", "to Haifa")
    # The second answer was written knowing the first exchange.
    last_request = [r["json"]["messages"] for r in llm.requests if r["json"]["messages"][-1]["content"] == "to Haifa"]
    assert [m["content"] for m in last_request[-1][1:]] == [
        "Do you deliver?", "LLM answer to: Do you deliver?", "to Haifa"]


def test_the_reconciler_redriving_a_burst_twice_gives_one_answer(shop, twilio, llm, start_worker):
    """Lost tasks: the reconciler re-drives every unanswered message, duplicated here, onto
    two ai worker processes at once; exactly one answer is stored and sent."""
    llm.delay_seconds = 0.5  # widen the window in which concurrent runs overlap
    contact = Contact.objects.create(tenant=shop, phone=PHONE, last_twilio_inbound_at=timezone.now())
    long_ago = timezone.now() - timedelta(minutes=2)
    for i, body in enumerate(["Hi", "is the", "shop open?"]):
        Message.objects.create(tenant=shop, contact=contact, direction=Direction.INBOUND, body=body,
                               status=Status.RECEIVED, created_at=long_ago + timedelta(seconds=i))
    start_two_ai_workers(start_worker)

    assert reconcile_outbound()["inbound"] == 3
    assert reconcile_outbound()["inbound"] == 0, "re-driven at most once per grace period"
    Message.objects.update(redriven_at=None)  # as if the grace period had passed
    assert reconcile_outbound()["inbound"] == 3

    wait_for(lambda: twilio.sent_to(PHONE), 20, message="the reply")
    time.sleep(2.5)
    assert [m["body"] for m in twilio.sent_to(PHONE)] == ["LLM answer to: Hi\nis the\nshop open?"]
    assert len(outbound()) == 1


def test_an_llm_outage_still_answers_every_customer(client, shop, twilio, llm, start_worker):
    llm.fail_always = "503"
    shop.fallback_reply = "Thanks! A person will answer you soon."
    shop.debounce_seconds = 0
    shop.save()
    start_two_ai_workers(start_worker, LLM_DEADLINE=2, LLM_TIMEOUT=1)

    customers = ["+15551230001", "+15551230002", "+15551230003"]
    for phone in customers:
        form = twilio_form(Body="Can I order a cake?", From=f"whatsapp:{phone}", WaId=phone[1:])
        assert post_twilio(client, PATH, form).status_code == 200

    for phone in customers:
        sent = wait_for(lambda phone=phone: twilio.sent_to(phone), 30, message=f"the reply to …{phone[-4:]}")
        assert sent[0]["body"] == "Thanks! A person will answer you soon."
    assert {m.engine for m in outbound()} == {"fallback"}
    assert len(llm.requests) >= 2 * len(customers), "each was retried before falling back"
