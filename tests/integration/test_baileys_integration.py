"""The Baileys path end to end on real parts: the lifecycle worker (queue `baileys`,
concurrency 1, beat) takes its Redis lease and runs the real sidecar in sandbox mode; the
sidecar posts signed webhooks to a real Django server; real ai/send workers answer
through the sidecar; the sandbox is the customer's phone."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.support.baileys import connect
from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for
from whatsapp.models import Contact, DeadLetter, DeliveryAttempt, Direction, Message, SessionState, Status
from whatsapp.sessions import lifecycle

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_message_that_comes_in_through_the_sidecar_is_answered_through_it(
    baileys_tenant, sandbox, lifecycle_worker, start_worker, twilio
):
    lifecycle_worker()
    start_worker()
    connect("acme")

    sandbox.inbound("acme", **{"from": "15551234567", "text": "What are your opening hours?", "pushName": "Dana"})

    sent = wait_for(lambda: sandbox.sent("acme"), 20, message="the reply on the customer's phone")
    assert sent[0]["text"] == "We are open 8-18, Sunday to Friday."
    assert sent[0]["to"].startswith("15551234567")
    reply = wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).first(), 10)
    assert reply.provider == "baileys"
    assert reply.provider_message_id == sent[0]["messageId"]
    assert reply.in_reply_to.contact.name == "Dana"
    assert twilio.messages == []


def test_a_customer_in_a_lid_chat_is_answered_and_known_by_both_ids(
    baileys_tenant, sandbox, lifecycle_worker, start_worker
):
    lifecycle_worker()
    start_worker()
    connect("acme")
    # A LID chat whose phone number WhatsApp also gave (remoteJidAlt).
    sandbox.inbound("acme", **{"from": "15550001111", "lid": "98765432101234", "text": "are you open today?"})

    sent = wait_for(lambda: sandbox.sent("acme"), 20, message="the reply")
    assert sent[0]["text"] == "We are open 8-18, Sunday to Friday."
    contact = Contact.objects.get(tenant=baileys_tenant)
    assert (contact.phone, contact.lid_jid, contact.wa_jid) == (
        "+15550001111", "98765432101234@lid", "15550001111@s.whatsapp.net",
    )


def test_a_customer_whatsapp_shows_only_by_lid_is_answered_at_that_lid(
    baileys_tenant, sandbox, live_django, lifecycle_worker, start_worker
):
    lifecycle_worker()
    start_worker()
    connect("acme")
    from tests.support.sidecar import signed_sidecar_post

    # What the sidecar posts when WhatsApp gives no phone number at all: `from` is null.
    # It must be accepted: the sidecar never retries a 4xx, so a refusal loses the message.
    response = signed_sidecar_post(f"{live_django}/webhooks/baileys/acme/", {
        "id": "3A0FLIDONLY1", "tenant": "acme", "from": None, "fromJid": "98765432101234@lid",
        "fromAltJid": None, "pushName": "Noa", "timestamp": int(time.time()), "type": "text",
        "text": "what are your hours?",
    })
    assert response.status_code == 200, response.text

    sent = wait_for(lambda: sandbox.sent("acme"), 20, message="the reply")
    assert sent[0]["to"] == "98765432101234@lid"
    assert sent[0]["text"] == "We are open 8-18, Sunday to Friday."
    contact = Contact.objects.get(tenant=baileys_tenant)
    assert (contact.phone, contact.lid_jid, contact.name) == ("", "98765432101234@lid", "Noa")


def test_the_lifecycle_worker_restarts_the_sidecar_when_it_dies_and_stops_it_at_shutdown(
    baileys_tenant, sandbox, lifecycle_worker
):
    worker = lifecycle_worker()
    connect("acme")
    first_pid = int(re.findall(r"sidecar started \(pid (\d+)\)", worker.output())[0])

    os.kill(first_pid, signal.SIGKILL)

    wait_for(lambda: len(re.findall(r"sidecar started \(pid (\d+)\)", worker.output())) >= 2, 15,
             message="a second sidecar")
    wait_for(sandbox.healthy, 10, message="the restarted sidecar")
    # The health check finds the session gone and reconnects it by itself (backoff 5 s).
    wait_for(lambda: sandbox.status("acme").get("canSend"), 20, message="the session reconnected")

    worker.stop()
    assert not sandbox.healthy()


def test_a_logged_out_session_stops_sending_and_the_reply_fails_over_to_twilio(
    client, baileys_tenant, sandbox, lifecycle_worker, start_worker, twilio
):
    lifecycle_worker()
    start_worker()
    connect("acme")
    sockets_before = sandbox.state("acme")["socketsCreated"]

    sandbox.disconnect("acme", 401)  # unlinked from the phone

    state = wait_for(
        lambda: SessionState.objects.filter(tenant__slug="acme", status="logged_out").first(), 10,
        message="the logout recorded",
    )
    assert not state.can_send and not state.auth_paired
    assert "QR" in state.alert

    response = post_twilio(client, "/webhooks/twilio/acme/", twilio_form(Body="What are your opening hours?"))
    assert response.status_code == 200
    sent = wait_for(lambda: twilio.sent_to("+15551234567"), 20, message="the reply at Twilio")
    assert sent[0]["body"] == "We are open 8-18, Sunday to Friday."
    # Twilio stores the message before it answers: wait for the worker to record it.
    reply = wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status="sent").first(), 10)
    assert reply.provider == "twilio"
    outcomes = list(DeliveryAttempt.objects.filter(message=reply).values_list("provider", "outcome"))
    assert outcomes == [("baileys", "skipped"), ("twilio", "accepted")]
    assert sandbox.sent("acme") == []

    time.sleep(3)  # three health checks: none of them reconnects a logged-out session
    assert sandbox.state("acme")["socketsCreated"] == sockets_before
    assert SessionState.objects.get(tenant__slug="acme").status == "logged_out"


def test_a_restart_waits_until_the_session_has_finished_sending(
    baileys_tenant, sandbox, lifecycle_worker, start_worker
):
    worker = lifecycle_worker()
    start_worker(queues="send", concurrency=1)
    connect("acme")
    sandbox.http.post(f"{sandbox.base}/sandbox/acme/behavior", json={"sendDelayMs": 2500}, timeout=5)
    sockets_before = sandbox.state("acme")["socketsCreated"]
    contact = Contact.objects.create(tenant=baileys_tenant, phone="+15551230000")
    reply = Message.objects.new_outbound(tenant=baileys_tenant, contact=contact, body="your order is ready")
    from whatsapp.outbound.tasks import send_message

    send_message.delay(reply.pk)
    wait_for(lambda: sandbox.http.get(f"{sandbox.base}/sessions/acme/sending-status", timeout=2).json()["isSending"],
             10, message="the send in flight")

    lifecycle.restart.delay("acme")

    wait_for(lambda: sandbox.state("acme")["socketsCreated"] > sockets_before, 20, message="the restart")
    assert "restart deferred" in worker.output()
    assert [m["text"] for m in sandbox.sent("acme")] == ["your order is ready"]
    reply.refresh_from_db()
    assert reply.status == Status.SENT and reply.provider == "baileys"
    wait_for(lambda: sandbox.status("acme").get("canSend"), 10, message="the session back after the restart")


def test_pacing_delays_a_burst_of_replies_but_loses_none(baileys_tenant, sandbox, lifecycle_worker, start_worker):
    baileys_tenant.baileys_sends_per_minute = 60  # one a second
    baileys_tenant.twilio_enabled = False
    baileys_tenant.save()
    lifecycle_worker()
    # Four concurrent senders; a send waits at most 1.5 s in place, later ones are retried at their slot.
    start_worker(queues="send", concurrency=4, BAILEYS_PACING_MAX_WAIT=1.5)
    connect("acme")
    from whatsapp.outbound.tasks import send_message

    ids = []
    for n in range(6):
        contact = Contact.objects.create(tenant=baileys_tenant, phone=f"+1555000{n:04d}")
        ids.append(Message.objects.new_outbound(tenant=baileys_tenant, contact=contact, body=f"answer {n}").pk)
    for pk in ids:
        send_message.delay(pk)

    sent = wait_for(lambda: len(sandbox.sent("acme")) >= 6 and sandbox.sent("acme"), 30, message="all six sent")
    assert sorted(m["text"] for m in sent) == [f"answer {n}" for n in range(6)]
    times = sorted(_ms(m["at"]) for m in sent)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # One a second, not a burst. Slots are a second apart; a send reaches the phone a little
    # after its slot (a loaded worker), so one gap can be shorter by that delay, never a burst.
    assert min(gaps) >= 500, gaps
    assert times[-1] - times[0] >= 4700, gaps
    wait_for(lambda: Message.objects.filter(pk__in=ids, status=Status.SENT).count() == 6, 10)
    assert not DeadLetter.objects.exists()
    # The later ones were deferred to their slot, not failed over or dropped.
    assert DeliveryAttempt.objects.filter(error_code="paced").exists()
    time.sleep(1)
    assert len(sandbox.sent("acme")) == 6  # nothing twice


def _ms(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000
