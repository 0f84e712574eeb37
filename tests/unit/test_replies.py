"""Which reply answers a customer's message: its own, or the one reply of the burst it
was merged into (linked to the burst's newest message)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from whatsapp.models import Contact, Direction, Message, Status
from whatsapp.replies import answering_reply

pytestmark = pytest.mark.django_db


def message(tenant, contact, direction, status, seconds_ago, **fields) -> Message:
    return Message.objects.create(tenant=tenant, contact=contact, direction=direction, status=status, body="x",
                                  created_at=timezone.now() - timedelta(seconds=seconds_ago), **fields)


def test_a_message_merged_into_a_burst_is_answered_by_the_bursts_reply_not_the_next_one(tenant):
    dana = Contact.objects.create(tenant=tenant, phone="+15550000001")
    eli = Contact.objects.create(tenant=tenant, phone="+15550000002")
    first, second = (message(tenant, dana, Direction.INBOUND, Status.ANSWERED, s) for s in (30, 29))
    burst_reply = message(tenant, dana, Direction.OUTBOUND, Status.SENT, 27, in_reply_to=second)
    later = message(tenant, dana, Direction.INBOUND, Status.ANSWERED, 10)
    message(tenant, dana, Direction.OUTBOUND, Status.SENT, 9, in_reply_to=later)
    other = message(tenant, eli, Direction.INBOUND, Status.ANSWERED, 29.5)
    message(tenant, eli, Direction.OUTBOUND, Status.SENT, 28, in_reply_to=other)

    assert answering_reply(first) == burst_reply
    assert answering_reply(second) == burst_reply


def test_a_message_still_waiting_has_no_reply_even_if_a_later_one_was_answered(tenant):
    dana = Contact.objects.create(tenant=tenant, phone="+15550000001")
    waiting = message(tenant, dana, Direction.INBOUND, Status.RECEIVED, 30)
    later = message(tenant, dana, Direction.INBOUND, Status.ANSWERED, 10)
    message(tenant, dana, Direction.OUTBOUND, Status.SENT, 9, in_reply_to=later)

    assert answering_reply(waiting) is None
