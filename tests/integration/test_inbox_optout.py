"""Opt-out through real workers: STOP (any case, any accents) gets one confirmation and
then nothing from the bot or staff until START; Twilio's 21610 marks the customer opted
out too."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tests.support.inbox import PHONE, customer_writes, inbound
from tests.support.waiting import wait_for
from whatsapp.inbox.models import Conversation, ConversationEvent, InboxSettings
from whatsapp.inbox.replies import ReplyRefused, send_staff_reply
from whatsapp.models import Contact, DeadLetter, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]



def bodies_sent(twilio) -> list[str]:
    return [s["body"] for s in twilio.sent_to(PHONE)]


def test_opt_out_then_opt_in(client, tenant, twilio, start_worker):
    InboxSettings.objects.create(tenant=tenant, stop_keywords="stop, baja", start_keywords="start, alta",
                                 opt_out_reply="Unsubscribed.", opt_in_reply="Welcome back.")
    start_worker()

    customer_writes(client, "  Stóp! ")
    wait_for(lambda: bodies_sent(twilio) == ["Unsubscribed."], 20, message="one confirmation")
    assert Conversation.objects.get().opted_out

    customer_writes(client, "what are your hours?")
    customer_writes(client, "STOP")
    wait_for(lambda: inbound("STOP").status == Status.WAITING, 20, message="the second STOP kept, unanswered")
    assert inbound("what are your hours?").status == Status.WAITING
    with pytest.raises(ReplyRefused, match="opted out"):
        send_staff_reply(Contact.objects.get(), User.objects.create_user("sam"), "We open at 8.")
    time.sleep(1)
    assert bodies_sent(twilio) == ["Unsubscribed."], "nothing from bot or staff after the confirmation"

    customer_writes(client, "ALTA")
    wait_for(lambda: bodies_sent(twilio) == ["Unsubscribed.", "Welcome back."], 20, message="the opt-in reply")
    assert not Conversation.objects.get().opted_out
    customer_writes(client, "hello again")
    wait_for(lambda: len(bodies_sent(twilio)) == 3, 20, message="the bot answering again")
    kinds = list(ConversationEvent.objects.values_list("kind", flat=True))
    assert kinds == ["opted_out", "opted_in"]


def test_stop_inside_a_sentence_is_not_an_opt_out(client, tenant, twilio, start_worker):
    start_worker()
    customer_writes(client, "which bus stop is closest?")
    wait_for(lambda: twilio.sent_to(PHONE), 20)
    assert not Conversation.objects.filter(opted_out=True).exists()


def test_twilio_21610_marks_the_customer_opted_out(client, tenant, twilio, start_worker):
    twilio.faults.unsubscribed.add(PHONE)
    start_worker()
    customer_writes(client, "hello")

    letter = wait_for(lambda: DeadLetter.objects.filter(kind="outbound").first(), 20, message="the refused reply")
    assert letter.reason == DeadLetter.Reason.PERMANENT and "21610" in letter.last_error
    conversation = wait_for(lambda: Conversation.objects.filter(opted_out=True).first(), 5)
    assert "21610" in ConversationEvent.objects.get(contact=conversation.contact).note

    customer_writes(client, "are you there?")
    wait_for(lambda: inbound("are you there?").status == Status.WAITING, 20, message="kept, not answered")
    assert twilio.requests == 1, "nothing else was tried"


def test_a_reply_queued_before_the_stop_is_not_sent_after_it(tenant, twilio, start_worker):
    from whatsapp.inbox import state
    from whatsapp.outbound.tasks import send_message

    contact = Contact.objects.create(tenant=tenant, phone=PHONE, last_twilio_inbound_at=timezone.now())
    queued = Message.objects.new_outbound(tenant=tenant, contact=contact, body="Our offers this week...",
                                          engine="rules")
    state.set_opted_out(contact, True)
    start_worker(queues="send")

    send_message.delay(queued.pk)

    letter = wait_for(lambda: DeadLetter.objects.filter(message=queued).first(), 20, message="the blocked reply")
    assert "opted out" in letter.last_error
    assert twilio.requests == 0
