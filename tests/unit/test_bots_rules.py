"""The rules engine as a customer meets it: a burst of questions gets an answer to each
question a rule recognises, and a greeting is recognised however it is written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bots.models import Rule
from bots.tasks import generate_reply
from whatsapp.models import Contact, Direction, Message, Status

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(tenant):
    tenant.bot_engine = "rules"
    tenant.greeting = "Hello! How can we help you today?"
    tenant.fallback_reply = "A member of our team will get back to you soon."
    tenant.save()
    Rule.objects.create(tenant=tenant, priority=1, pattern="hours, open", answer="We are open 8-18.")
    Rule.objects.create(tenant=tenant, priority=2, pattern="deliver, delivery", answer="We deliver within 5 km.")
    Rule.objects.create(tenant=tenant, priority=3, pattern=r"gluten[- ]free", is_regex=True,
                        answer="Gluten-free bread on Tuesdays.")
    return tenant


def answer_to(tenant, *bodies: str) -> str:
    """What the bot answers when the customer writes `bodies` in one burst."""
    contact = Contact.objects.create(tenant=tenant, phone="+15551234567")
    at = timezone.now() - timedelta(minutes=1)
    burst = [Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, body=body,
                                    status=Status.RECEIVED, created_at=at + timedelta(seconds=i))
             for i, body in enumerate(bodies)]
    generate_reply(burst[-1].pk)
    return Message.objects.get(direction=Direction.OUTBOUND, in_reply_to=burst[-1]).body


def test_a_burst_of_questions_gets_an_answer_to_each_recognised_question_in_the_order_asked(shop):
    answer = answer_to(shop, "Hi", "do you deliver to Haifa?", "what are your hours?", "and gluten free?")
    assert answer == "We deliver within 5 km.\n\nWe are open 8-18.\n\nGluten-free bread on Tuesdays."


def test_a_question_asked_twice_in_a_burst_is_answered_once(shop):
    assert answer_to(shop, "when are you open?", "what are your hours??") == "We are open 8-18."


def test_a_burst_with_one_recognised_question_answers_it_even_if_it_was_not_the_last(shop):
    assert answer_to(shop, "what are your hours?", "thanks", "bye") == "We are open 8-18."


@pytest.mark.parametrize("greeting", ["hi", "Hi!", "hello there", "Hey, how are you?", "Good morning :)",
                                      "HELLO!!!", "hi all"])
def test_a_greeting_however_written_gets_the_greeting(shop, greeting):
    assert answer_to(shop, greeting) == "Hello! How can we help you today?"


@pytest.mark.parametrize("text", ["hiking boots?", "hi, can I pay with a card at the counter please?",
                                  "this is not hello"])
def test_a_message_that_only_looks_like_a_greeting_gets_the_fallback(shop, text):
    assert answer_to(shop, text) == "A member of our team will get back to you soon."


def test_a_greeting_followed_by_an_unknown_question_gets_the_fallback_not_the_greeting(shop):
    assert answer_to(shop, "hello there", "can I pay by card?") == "A member of our team will get back to you soon."
