"""Delivery receipts: Twilio status callbacks (signed) and sidecar acks move a reply
forward, never backwards, and a late failure is recorded without a re-send."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import post_twilio
from tests.delivery_helpers import make_reply
from whatsapp.models import TRANSITIONS, Message, Status
from whatsapp.signatures import sidecar_signature

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_reply(tenant):
    message = make_reply(tenant)
    Message.objects.filter(pk=message.pk).update(status=Status.SENT, provider="twilio", provider_message_id="SMabc")
    message.refresh_from_db()
    return message


def callback(client, message_status: str, sid: str = "SMabc", error_code: str = ""):
    form = {"MessageSid": sid, "MessageStatus": message_status, "AccountSid": "AC" + "0" * 32}
    if error_code:
        form["ErrorCode"] = error_code
    return post_twilio(client, "/webhooks/twilio/acme/status/", form)


def test_status_callbacks_move_a_reply_forward(client, sent_reply):
    assert callback(client, "delivered").json()["status"] == "delivered"
    assert callback(client, "read").json()["status"] == "read"
    sent_reply.refresh_from_db()
    assert sent_reply.status == Status.READ
    assert sent_reply.delivered_at and sent_reply.read_at


def test_a_late_or_reordered_callback_never_moves_a_status_backwards(client, sent_reply):
    callback(client, "read")
    response = callback(client, "delivered")
    assert response.status_code == 200 and response.json()["applied"] is False
    callback(client, "sent")
    sent_reply.refresh_from_db()
    assert sent_reply.status == Status.READ


def test_a_failure_after_sent_is_recorded_with_its_code_and_not_resent(client, sent_reply, redis_server):
    response = callback(client, "undelivered", error_code="63024")
    assert response.json()["status"] == "undelivered"
    sent_reply.refresh_from_db()
    assert sent_reply.error_code == "63024"
    assert sent_reply.attempts.count() == 0
    assert redis_server.client().llen("send") == 0


def test_an_unsigned_status_callback_is_refused(client, sent_reply):
    response = client.post("/webhooks/twilio/acme/status/", data="MessageSid=SMabc&MessageStatus=read",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 403
    sent_reply.refresh_from_db()
    assert sent_reply.status == Status.SENT


def test_a_callback_for_an_unknown_message_is_acknowledged_and_ignored(client, sent_reply):
    response = callback(client, "delivered", sid="SMnotours")
    assert response.status_code == 200 and response.json()["applied"] is False


def test_a_callback_for_a_part_of_a_split_answer_finds_its_message(client, sent_reply):
    sent_reply.attempts.create(provider="twilio", outcome="accepted", part=1, provider_message_id="SMpart2")
    assert callback(client, "delivered", sid="SMpart2").json()["status"] == "delivered"


def test_a_sidecar_ack_moves_a_baileys_reply_forward(client, tenant, settings):
    message = make_reply(tenant)
    Message.objects.filter(pk=message.pk).update(status=Status.SENT, provider="baileys", provider_message_id="3EB0A")
    body = json.dumps({"tenant": "acme", "messageId": "3EB0A", "idempotencyKey": f"{message.idempotency_key}:0",
                       "status": "delivered", "timestamp": int(time.time())}).encode()
    ts = str(int(time.time()))
    response = client.post(
        "/webhooks/baileys/acme/status/", data=body, content_type="application/json",
        HTTP_X_SIDECAR_TIMESTAMP=ts, HTTP_X_SIDECAR_SIGNATURE=sidecar_signature(settings.SIDECAR_WEBHOOK_SECRET, ts, body),
    )
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == Status.DELIVERED


def test_no_status_can_go_back_to_an_earlier_one():
    order = [Status.QUEUED, Status.SENDING, Status.SENT, Status.DELIVERED, Status.READ]
    for i, status in enumerate(order):
        assert not TRANSITIONS[status] & set(order[:i]) - {Status.QUEUED}, status
    assert TRANSITIONS[Status.READ] == set()


def test_a_receipt_for_a_reply_dead_lettered_as_ambiguous_closes_the_dead_letter(client, tenant, twilio, settings,
                                                                                   redis_server):
    """Twilio's answer never came back, so the reply became an "ambiguous" dead letter;
    Twilio's status callback (it carries our key) then proves the customer got it."""
    from tests.delivery_helpers import drive
    from whatsapp.models import DeadLetter

    settings.PUBLIC_BASE_URL = "https://bot.example.com"
    settings.TWILIO_READ_TIMEOUT = 1
    settings.SEND_AMBIGUOUS_RESOLVE_SECONDS = 0
    twilio.faults.hang_all = True
    twilio.faults.hang_seconds = 2
    message = drive(make_reply(tenant))
    assert message.status == Status.DEAD
    callback_url = f"https://bot.example.com/webhooks/twilio/acme/status/?key={message.idempotency_key}:0"

    form = {"MessageSid": "SMlate", "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    response = post_twilio(client, "/webhooks/twilio/acme/status/?key=" + f"{message.idempotency_key}:0", form,
                           signed_url=callback_url)

    assert response.status_code == 200 and response.json()["applied"] is True
    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == (Status.DELIVERED, "SMlate")
    letter = DeadLetter.objects.get(message=message)
    assert letter.resolution == "confirmed" and letter.resolved_at is not None


def test_a_receipt_does_not_touch_a_reply_that_is_still_being_sent(client, tenant):
    message = make_reply(tenant)
    Message.objects.filter(pk=message.pk).update(status=Status.SENDING, provider="twilio", provider_message_id="SMx")
    assert callback(client, "delivered", sid="SMx").json()["applied"] is False
    message.refresh_from_db()
    assert message.status == Status.SENDING


def test_a_receipt_carrying_a_requeued_parts_key_finds_its_reply(client, tenant):
    """After a requeue the part keys carry the generation (`<key>:<generation>:<index>`);
    a Twilio callback whose answer was lost still finds the reply by that key."""
    from whatsapp.answer_parts import part_key

    message = make_reply(tenant)
    Message.objects.filter(pk=message.pk).update(status=Status.SENT, provider="twilio", key_generation=2)
    message.refresh_from_db()
    key = part_key(message, 0)
    assert key == f"{message.idempotency_key}:2:0"
    form = {"MessageSid": "SMlostanswer", "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    response = post_twilio(client, f"/webhooks/twilio/acme/status/?key={key}", form,
                           signed_url=f"http://testserver/webhooks/twilio/acme/status/?key={key}")
    assert response.json()["status"] == "delivered"
