"""Presence through the WhatsApp Web session, end to end on real parts (the lifecycle
worker's sandbox sidecar, a real Django server, real workers): with the tenant's switch
on, the customer's phone sees their message read, then "typing..." for a while, then the
answer; with it off, only the answer. Timing rules: tests/test_presence_timing.py."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.support.baileys import HOURS_ANSWER, connect
from tests.support.waiting import wait_for
from whatsapp.models import Message

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def activity(sandbox) -> list[dict]:
    return sandbox.http.get(f"{sandbox.base}/sandbox/acme/activity", timeout=5).json()["activity"]


def _at(event: dict) -> datetime:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00"))


def test_with_presence_on_the_customer_sees_read_then_typing_then_the_answer(
    baileys_tenant, sandbox, lifecycle_worker, start_worker
):
    baileys_tenant.session_presence = True
    baileys_tenant.save()
    lifecycle_worker()
    start_worker()
    connect("acme")

    first = sandbox.inbound("acme", **{"from": "15551234567", "text": "hi"})["id"]
    second = sandbox.inbound("acme", **{"from": "15551234567", "text": "What are your opening hours?"})["id"]

    wait_for(lambda: [s for s in sandbox.sent("acme") if s["text"] == HOURS_ANSWER], 20, message="the answer")
    events = wait_for(lambda: [e for e in activity(sandbox) if e["event"] != "message" or e["messageId"]], 5)
    answer = next(s for s in sandbox.sent("acme") if s["text"] == HOURS_ANSWER)
    # Only what led up to the answer (the bot may also have greeted the "hi").
    mine = events[:next(i for i, e in enumerate(events) if e.get("messageId") == answer["messageId"]) + 1]
    tail = mine[-4:]
    assert [e.get("type") or e["event"] for e in tail] == ["read", "composing", "paused", "message"]
    read_ids = [k["id"] for e in mine if e["event"] == "read" for k in e["keys"]]
    assert second in read_ids and first in read_ids
    assert all(k["remoteJid"] == "15551234567@s.whatsapp.net" for e in mine if e["event"] == "read" for k in e["keys"])
    assert tail[1]["to"] == tail[2]["to"] == answer["to"]
    typed = (_at(tail[2]) - _at(tail[1])).total_seconds()
    # 0.5 s + 35 characters at 30 a second (PRESENCE_TYPING_*), within one pacing interval.
    assert 1.3 <= typed <= 3.0, typed
    wait_for(lambda: Message.objects.filter(provider_message_id=answer["messageId"], status__in=["sent", "delivered"])
             .exists(), 10, message="the answer recorded as sent")


def test_with_presence_off_the_customer_sees_only_the_answer(baileys_tenant, sandbox, lifecycle_worker, start_worker):
    lifecycle_worker()
    start_worker()
    connect("acme")

    sandbox.inbound("acme", **{"from": "15551234567", "text": "What are your opening hours?"})

    wait_for(lambda: sandbox.sent("acme"), 20, message="the answer")
    assert [e["event"] for e in activity(sandbox)] == ["message"]
