"""Opening hours: the rule with the clock passed in, and the away message through real
workers (sent once per conversation; the customer's messages wait for staff)."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from tests.support.inbox import PHONE, customer_writes, inbound
from tests.support.waiting import wait_for
from whatsapp.inbox.hours import is_open, validate_hours
from whatsapp.inbox.models import Conversation, InboxSettings
from whatsapp.models import Status

MADRID = "Europe/Madrid"
HOURS = {"mon": "08:00-12:00, 14:00-18:00", "sat": "10:00-24:00"}


def at(text: str, zone: str = MADRID) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(("moment", "open_"), [
    ("2026-11-30 08:00", True),   # Monday, opening minute
    ("2026-11-30 12:00", False),  # lunch: the end is exclusive
    ("2026-11-30 17:59", True),
    ("2026-12-05 23:59", True),   # Saturday until midnight
    ("2026-12-06 11:00", False),  # Sunday: not listed, closed
    ("2026-12-01 09:00", False),  # Tuesday: not listed, closed
])
def test_opening_hours_are_read_in_the_tenants_time_zone(moment, open_):
    assert is_open(HOURS, MADRID, at(moment)) is open_


def test_the_same_instant_in_utc_is_judged_by_the_tenants_clock():
    # 07:30 UTC on a Monday in winter is 08:30 in Madrid.
    assert is_open(HOURS, MADRID, at("2026-11-30 07:30", "UTC"))
    assert not is_open(HOURS, "UTC", at("2026-11-30 07:30", "UTC"))


def test_no_hours_means_always_open():
    assert is_open({}, MADRID, at("2026-12-06 03:00"))


@pytest.mark.parametrize("bad", [{"monday": "08:00-18:00"}, {"mon": "8-18"}, {"mon": "18:00-08:00"}, []])
def test_bad_hours_are_refused_with_a_clear_error(bad):
    with pytest.raises(ValidationError):
        validate_hours(bad)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_outside_hours_the_away_message_goes_once_and_the_messages_wait_for_staff(
    client, tenant, twilio, start_worker
):
    # Open one minute a week, on a day that is not today: closed now.
    other_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(datetime.now(ZoneInfo(MADRID)).weekday() + 3) % 7]
    InboxSettings.objects.create(tenant=tenant, time_zone=MADRID, opening_hours={other_day: "03:00-03:01"},
                                 outside_hours="away", away_message="We are closed; we answer at 8.")
    start_worker()

    customer_writes(client, "hello?")
    sent = wait_for(lambda: twilio.sent_to(PHONE), 20, message="the away message")
    assert [s["body"] for s in sent] == ["We are closed; we answer at 8."]
    customer_writes(client, "it's urgent")
    wait_for(lambda: inbound("it's urgent").status == Status.WAITING, 20, message="the second message held")
    assert inbound("hello?").status == Status.WAITING
    time.sleep(1)
    assert len(twilio.sent_to(PHONE)) == 1, "the away message goes once per conversation"
    assert Conversation.objects.get().away_sent_at is not None
