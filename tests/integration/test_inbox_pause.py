"""Bot pause per contact and staff replies, through real Celery workers on a real Redis and
the fake Twilio: a paused conversation gets no bot reply however often the customer
writes; a pause can be set before the contact ever wrote; a staff reply is an ordinary
outbound message (failover, dead letter) with its author."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User

from tests.support.inbox import PHONE, customer_writes, inbound
from tests.support.ports import free_port
from tests.support.waiting import wait_for
from whatsapp.inbox import state
from whatsapp.inbox.models import Conversation, ConversationEvent, PauseReason
from whatsapp.inbox.replies import ReplyRefused, send_staff_reply
from whatsapp.models import Contact, DeadLetter, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]



@pytest.fixture
def staff(db):
    return User.objects.create_user("sam", password="pw", is_staff=True, first_name="Sam")


def test_a_paused_conversation_gets_no_bot_reply_while_the_customer_keeps_writing(
    client, tenant, twilio, start_worker, staff
):
    start_worker()
    customer_writes(client, "hello")
    wait_for(lambda: twilio.sent_to(PHONE), 20, message="the bot's first answer")
    contact = Contact.objects.get(phone=PHONE)

    state.pause(contact, PauseReason.STAFF, by=staff)
    for body in ("are you there?", "hello??", "I need the price"):
        customer_writes(client, body)
    for body in ("are you there?", "hello??", "I need the price"):
        wait_for(lambda b=body: inbound(b).status == Status.WAITING, 20, message=f"{body!r} held for staff")

    time.sleep(1)  # a bot reply, if one were coming, would be at the fake by now
    assert len(twilio.sent_to(PHONE)) == 1
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 1
    assert not DeadLetter.objects.exists(), "messages held for staff are not dead letters"


def test_a_pause_set_before_the_contact_ever_wrote_holds_their_first_message(
    client, tenant, twilio, start_worker, staff
):
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    state.pause(contact, PauseReason.STAFF, by=staff)
    start_worker()

    customer_writes(client, "hi, first time here")
    wait_for(lambda: inbound("hi, first time here").status == Status.WAITING, 20, message="the message held")
    time.sleep(1)
    assert twilio.sent_to(PHONE) == []


def test_handing_back_lets_the_bot_answer_what_waited(client, tenant, twilio, start_worker, staff):
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    state.pause(contact, PauseReason.STAFF, by=staff)
    start_worker()
    customer_writes(client, "what are your hours?")
    wait_for(lambda: inbound("what are your hours?").status == Status.WAITING, 20)

    assert state.resume(contact, by=staff)
    wait_for(lambda: twilio.sent_to(PHONE), 20, message="the bot's answer after the hand-back")
    assert inbound("what are your hours?").status == Status.ANSWERED
    kinds = list(ConversationEvent.objects.filter(contact=contact).values_list("kind", flat=True))
    assert kinds == ["paused", "resumed"]


def test_a_staff_reply_is_sent_with_its_author_and_answers_what_waited(
    client, tenant, twilio, start_worker, staff
):
    start_worker()
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    state.pause(contact, PauseReason.STAFF, by=staff)
    customer_writes(client, "can someone call me?")
    wait_for(lambda: inbound("can someone call me?").status == Status.WAITING, 20)

    reply = send_staff_reply(Contact.objects.get(pk=contact.pk), staff, "Hi, this is Sam, calling you in 5 minutes.")

    sent = wait_for(lambda: twilio.sent_to(PHONE), 20, message="the staff reply at Twilio")
    assert [s["body"] for s in sent] == ["Hi, this is Sam, calling you in 5 minutes."]
    reply.refresh_from_db()
    assert reply.author == staff and reply.engine == "staff"
    assert wait_for(lambda: Message.objects.get(pk=reply.pk).status == Status.SENT, 10)
    assert inbound("can someone call me?").status == Status.ANSWERED


def test_a_staff_reply_takes_over_so_the_bot_does_not_talk_over_staff(client, tenant, twilio, start_worker, staff):
    start_worker()
    contact = Contact.objects.create(tenant=tenant, phone=PHONE, last_twilio_inbound_at=time_now())
    send_staff_reply(contact, staff, "Your order is ready.")
    wait_for(lambda: twilio.sent_to(PHONE), 20)

    customer_writes(client, "great, thanks")
    wait_for(lambda: inbound("great, thanks").status == Status.WAITING, 20, message="held for staff")
    conversation = Conversation.objects.get(contact=contact)
    assert conversation.bot_paused and conversation.paused_by == staff


def test_a_staff_reply_fails_over_from_a_dead_sidecar_to_twilio(client, tenant, twilio, start_worker, staff, settings):
    settings.SIDECAR_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    tenant.baileys_enabled = True
    tenant.save()
    start_worker()
    contact = Contact.objects.create(tenant=tenant, phone=PHONE, last_twilio_inbound_at=time_now())

    reply = send_staff_reply(contact, staff, "We have your size in stock.")

    wait_for(lambda: twilio.sent_to(PHONE), 20, message="the staff reply through Twilio")
    reply = wait_for(lambda: Message.objects.filter(pk=reply.pk, status=Status.SENT).first(), 10)
    assert list(reply.attempts.values_list("provider", "outcome")) == [("baileys", "skipped"), ("twilio", "accepted")]


def test_a_staff_reply_that_cannot_be_delivered_becomes_a_dead_letter(client, tenant, twilio, start_worker, staff):
    twilio.faults.invalid_numbers.add(PHONE)
    start_worker()
    contact = Contact.objects.create(tenant=tenant, phone=PHONE, last_twilio_inbound_at=time_now())

    reply = send_staff_reply(contact, staff, "Hello?")

    letter = wait_for(lambda: DeadLetter.objects.filter(message=reply).first(), 20, message="the dead letter")
    assert letter.reason == DeadLetter.Reason.PERMANENT
    assert Message.objects.get(pk=reply.pk).author == staff


def test_a_staff_reply_to_an_opted_out_customer_is_refused_and_nothing_is_stored(tenant, staff):
    contact = Contact.objects.create(tenant=tenant, phone=PHONE, last_twilio_inbound_at=time_now())
    state.set_opted_out(contact, True)
    with pytest.raises(ReplyRefused, match="opted out"):
        send_staff_reply(contact, staff, "Hello?")
    assert not Message.objects.exists()


def test_a_staff_reply_outside_the_window_without_a_template_is_refused(tenant, staff):
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)  # never wrote: window closed
    with pytest.raises(ReplyRefused, match="24-hour window"):
        send_staff_reply(contact, staff, "Hello?")
    assert not Message.objects.exists()


def time_now():
    from django.utils import timezone

    return timezone.now()


def test_a_take_over_while_the_bot_is_thinking_drops_the_bots_answer(
    client, tenant, twilio, llm, start_worker, staff
):
    llm.delay_seconds = 3  # the model is slow: staff take over meanwhile
    start_worker(BOT_ENGINE="llm", LLM_BASE_URL=llm.base_url, LLM_API_KEY="sk-test", LLM_TIMEOUT=10,
                 LLM_DEADLINE=20)
    customer_writes(client, "is the shop open on Sunday?")
    wait_for(lambda: llm.bodies(), 20, message="the question at the model")

    state.pause(Contact.objects.get(phone=PHONE), PauseReason.STAFF, by=staff)

    wait_for(lambda: inbound("is the shop open on Sunday?").status == Status.WAITING, 20,
             message="the question held for staff once the answer came back")
    time.sleep(1)
    assert twilio.sent_to(PHONE) == []
    assert not Message.objects.filter(direction=Direction.OUTBOUND).exists()
