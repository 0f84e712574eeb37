"""What WhatsApp really does around the sidecar, end to end on real parts (lifecycle worker,
real sidecar in sandbox mode, real Django server, real ai/send workers): messages held by
the server while the session is down, sends that are written but never acknowledged, and
the longest text WhatsApp allows."""

from __future__ import annotations

import pytest

from tests.support.baileys import HOURS_ANSWER, connect
from tests.support.waiting import wait_for
from whatsapp.models import DeadLetter, DeliveryAttempt, Direction, Message, Outcome, Status, Tenant

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def reply_to(text_id: str) -> Message | None:
    return Message.objects.filter(direction=Direction.OUTBOUND, in_reply_to__provider_message_id=text_id).first()


def test_a_message_that_arrives_while_the_session_is_down_is_answered_after_the_reconnect(
    baileys_tenant, sandbox, lifecycle_worker, start_worker
):
    lifecycle_worker()
    start_worker()
    connect("acme")

    sandbox.disconnect("acme", 408)  # connection lost: the lifecycle worker reconnects
    held = sandbox.inbound("acme", **{"from": "15551234567", "text": "are you open today?", "id": "WAID-GAP1"})
    assert sandbox.state("acme")["heldOffline"] == 1, "WhatsApp holds it: the socket is down"

    # After the reconnect WhatsApp delivers it as an `append` upsert, not `notify`.
    sent = wait_for(lambda: sandbox.sent("acme"), 40, message="the reply after the reconnect")
    assert [s["text"] for s in sent] == [HOURS_ANSWER]
    inbound = Message.objects.get(direction=Direction.INBOUND)
    assert inbound.provider_message_id == held["id"]


def test_a_send_whose_server_ack_never_comes_is_not_counted_as_sent_nor_sent_again(
    baileys_tenant, sandbox, lifecycle_worker, start_worker, twilio
):
    lifecycle_worker(SIDECAR_ACK_TIMEOUT_MS=1000)
    start_worker(SEND_AMBIGUOUS_RESOLVE_SECONDS=4)
    connect("acme")
    sandbox.behavior("acme", acks="withhold")

    sandbox.inbound("acme", **{"from": "15551234567", "text": "what are your hours?", "id": "WAID-NOACK"})

    dead = wait_for(lambda: DeadLetter.objects.filter(reason=DeadLetter.Reason.AMBIGUOUS).first(), 40,
                    message="the unknown outcome to become a dead letter")
    reply = reply_to("WAID-NOACK")
    assert reply.status != Status.SENT
    assert dead.message_id == reply.pk
    assert len(sandbox.sent("acme")) == 1, "written once, never re-sent while the outcome is unknown"
    assert twilio.messages == [], "an unknown outcome is not failed over (that could be a second copy)"
    assert DeliveryAttempt.objects.filter(message=reply, outcome=Outcome.AMBIGUOUS).exists()


def test_a_late_server_ack_turns_the_unknown_outcome_into_sent(
    baileys_tenant, sandbox, lifecycle_worker, start_worker, twilio
):
    lifecycle_worker(SIDECAR_ACK_TIMEOUT_MS=1000)
    start_worker(SEND_AMBIGUOUS_RESOLVE_SECONDS=120)
    connect("acme")
    sandbox.behavior("acme", acks="withhold")

    sandbox.inbound("acme", **{"from": "15551234567", "text": "what are your hours?", "id": "WAID-LATE"})
    wait_for(lambda: DeliveryAttempt.objects.filter(outcome=Outcome.AMBIGUOUS).exists(), 30,
             message="the unacked send recorded as ambiguous")
    assert reply_to("WAID-LATE").status != Status.SENT

    [message_id] = sandbox.release_acks("acme")

    reply = wait_for(lambda: Message.objects.filter(
        direction=Direction.OUTBOUND, status=Status.SENT, provider_message_id=message_id).first(), 30,
        message="the reply resolved as sent by the sidecar's lookup")
    assert reply.provider == "baileys"
    assert len(sandbox.sent("acme")) == 1
    assert twilio.messages == []
    assert not DeadLetter.objects.exists()


def test_the_longest_whatsapp_text_reaches_django_and_is_stored_whole(
    baileys_tenant, sandbox, lifecycle_worker, start_worker
):
    lifecycle_worker()
    connect("acme")
    # 70,000 bytes of UTF-8 in 65,000 characters: over the 64 KB that Twilio's webhooks allow.
    text = "what are your hours? " + "x" * 59_979 + "é" * 5_000
    assert len(text.encode()) == 70_000

    sandbox.inbound("acme", **{"from": "15551234567", "text": text, "id": "WAID-LONG"})

    stored = wait_for(lambda: Message.objects.filter(direction=Direction.INBOUND, provider_message_id="WAID-LONG")
                      .first(), 20, message="the long message stored")
    assert stored.body == text


def rejected(sandbox) -> list[dict]:
    response = sandbox.http.get(f"{sandbox.base}/inbound/rejected", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_message_for_a_tenant_renamed_meanwhile_is_retried_and_stored_once_the_name_is_back(
    baileys_tenant, sandbox, lifecycle_worker, tmp_path
):
    lifecycle_worker()
    connect("acme")
    Tenant.objects.filter(pk=baileys_tenant.pk).update(slug="acme-renamed")  # Django answers 404

    sandbox.inbound("acme", **{"from": "15551234567", "text": "hello?", "id": "WAID-RENAMED"})
    access_log = tmp_path / "web.log"  # written by the live_django fixture
    wait_for(lambda: '"POST /webhooks/baileys/acme/ HTTP/1.1" 404' in access_log.read_text(), 10,
             message="Django refusing the message for the unknown tenant")
    Tenant.objects.filter(pk=baileys_tenant.pk).update(slug="acme")

    stored = wait_for(lambda: Message.objects.filter(provider_message_id="WAID-RENAMED").first(), 30,
                      message="the message stored after the retry")
    assert stored.body == "hello?"
    assert rejected(sandbox) == []


def test_a_message_django_refuses_for_good_is_offered_back_with_django_s_reason(
    baileys_tenant, sandbox, lifecycle_worker
):
    lifecycle_worker(SIDECAR_WEBHOOK_AUTH_RETRY_MS=500)
    connect("acme")
    Tenant.objects.filter(pk=baileys_tenant.pk).update(slug="acme-renamed")

    sandbox.inbound("acme", **{"from": "15551234567", "text": "anyone?", "id": "WAID-LOST"})

    [item] = wait_for(lambda: rejected(sandbox), 20, message="the refused message offered as rejected")
    assert (item["tenant"], item["kind"], item["httpStatus"]) == ("acme", "message", 404)
    assert item["error"].startswith("unknown_tenant")
    assert item["payload"]["id"] == "WAID-LOST" and item["payload"]["text"] == "anyone?"
    assert sandbox.http.delete(f"{sandbox.base}/inbound/rejected/{item['id']}", timeout=5).status_code == 204
    assert rejected(sandbox) == []
