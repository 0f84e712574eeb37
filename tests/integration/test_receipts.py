"""Delivery receipts: Twilio status callbacks (signed) and sidecar acks move a reply
forward, never backwards; a failure after acceptance fails over or dead-letters the
reply with the provider's reason; a failure after delivery is recorded without a re-send."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.delivery import make_reply
from tests.support.twilio_webhooks import post_twilio
from whatsapp.inbound.signatures import sidecar_signature
from whatsapp.models import TRANSITIONS, DeadLetter, Message, Status

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


def test_an_undelivered_receipt_after_acceptance_dead_letters_the_reply_with_the_reason(client, sent_reply,
                                                                                         redis_server):
    """Twilio took the reply, then could not deliver it (63024) and no provider is left:
    staff see a dead letter that says why, and the reply no longer counts as sent."""
    sent_reply.attempts.create(provider="twilio", outcome="accepted", part=0, provider_message_id="SMabc")
    response = callback(client, "undelivered", error_code="63024")
    assert response.status_code == 200 and response.json()["applied"] is True
    sent_reply.refresh_from_db()
    assert sent_reply.status == Status.DEAD
    letter = DeadLetter.objects.get(message=sent_reply, resolved_at__isnull=True)
    assert letter.reason == DeadLetter.Reason.UNDELIVERED
    assert "63024" in letter.last_error and "invalid message recipient" in letter.last_error
    assert sent_reply.attempts.get().outcome == "failed"
    assert redis_server.client().llen("send") == 0
    # Twilio repeating the same callback changes nothing.
    assert callback(client, "undelivered", error_code="63024").json()["applied"] is False
    assert DeadLetter.objects.filter(message=sent_reply).count() == 1


def test_a_failure_after_the_customer_had_it_is_recorded_and_not_resent(client, sent_reply, redis_server):
    sent_reply.attempts.create(provider="twilio", outcome="accepted", part=0, provider_message_id="SMabc")
    callback(client, "delivered")
    response = callback(client, "failed", error_code="30008")
    assert response.json()["status"] == "failed"
    sent_reply.refresh_from_db()
    assert sent_reply.error_code == "30008"
    assert list(sent_reply.attempts.values_list("outcome", flat=True)) == ["accepted"]
    assert not DeadLetter.objects.filter(message=sent_reply).exists()
    assert redis_server.client().llen("send") == 0


def test_a_failed_ack_from_the_sidecar_fails_over_to_twilio_which_sends_it_once(
        client, tenant, twilio, settings, redis_server, django_capture_on_commit_callbacks):
    """WhatsApp Web took the reply, then reported an error status: Twilio (the next
    provider) sends it, and the session is not tried again for this reply."""
    from tests.support.delivery import drive, outcomes

    tenant.baileys_enabled = True
    tenant.save()
    message = make_reply(tenant)
    Message.objects.filter(pk=message.pk).update(status=Status.SENT, provider="baileys", provider_message_id="3EB0F",
                                                 parts_sent=1)
    message.attempts.create(provider="baileys", outcome="accepted", part=0, provider_message_id="3EB0F")
    with django_capture_on_commit_callbacks(execute=True):
        response = sidecar_ack(client, settings, message, "3EB0F", "failed")
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert redis_server.client().llen("send") == 1, "the failover is enqueued at once"

    message = drive(message)
    assert (message.status, message.provider) == (Status.SENT, "twilio")
    assert outcomes(message) == [("baileys", "failed"), ("twilio", "accepted")]
    assert len(twilio.sent_to(message.contact.phone)) == 1
    assert message.provider_message_id == twilio.sent_to(message.contact.phone)[0]["sid"]
    # The sidecar repeating its failure does not touch the reply Twilio sent.
    assert sidecar_ack(client, settings, message, "3EB0F", "failed").json()["applied"] is False
    message.refresh_from_db()
    assert message.status == Status.SENT


def test_receipt_handling_takes_the_same_few_queries_however_many_attempts_are_stored(
        client, sent_reply, django_assert_max_num_queries):
    from whatsapp.models import DeliveryAttempt

    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(message=sent_reply, provider="twilio", outcome="accepted", part=i, provider_message_id=f"SM{i}")
        for i in range(2, 500)
    )
    sent_reply.attempts.create(provider="twilio", outcome="accepted", part=1, provider_message_id="SMpart2")
    with django_assert_max_num_queries(8):
        assert callback(client, "delivered", sid="SMpart2").json()["status"] == "delivered"
    with django_assert_max_num_queries(8):  # a phone-sent message: not ours
        assert callback(client, "delivered", sid="SMfromthephone").json()["applied"] is False


def test_attempts_are_found_by_provider_message_id_through_an_index():
    from django.db import connection

    from whatsapp.models import DeliveryAttempt

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, DeliveryAttempt._meta.db_table)
    assert any(c["index"] and c["columns"] == ["provider_message_id"] for c in constraints.values())


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


def sidecar_ack(client, settings, message, message_id: str, status: str):
    body = json.dumps({"tenant": "acme", "messageId": message_id, "idempotencyKey": f"{message.idempotency_key}:0",
                       "status": status, "timestamp": int(time.time())}).encode()
    ts = str(int(time.time()))
    return client.post(
        "/webhooks/baileys/acme/status/", data=body, content_type="application/json",
        HTTP_X_SIDECAR_TIMESTAMP=ts, HTTP_X_SIDECAR_SIGNATURE=sidecar_signature(settings.SIDECAR_WEBHOOK_SECRET, ts, body),
    )


def test_a_sidecar_ack_moves_a_baileys_reply_forward(client, tenant, settings):
    message = make_reply(tenant)
    Message.objects.filter(pk=message.pk).update(status=Status.SENT, provider="baileys", provider_message_id="3EB0A")
    response = sidecar_ack(client, settings, message, "3EB0A", "delivered")
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
    from tests.support.delivery import drive
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


def test_a_failure_receipt_that_comes_while_a_worker_still_holds_the_reply_is_acted_on_when_it_finishes(
        client, tenant, twilio):
    """Twilio can report 63024 within a second, before the worker that sent the reply has
    marked it sent: the failure is kept on the attempt and the worker acts on it."""
    from tests.support.delivery import drive

    message = make_reply(tenant)
    Message.objects.filter(pk=message.pk).update(status=Status.SENDING, provider="twilio", provider_message_id="SMabc",
                                                 parts_sent=1)
    message.attempts.create(provider="twilio", outcome="accepted", part=0, provider_message_id="SMabc")
    assert callback(client, "undelivered", error_code="63024").json()["status"] == "sending"
    assert message.attempts.get().outcome == "failed"

    Message.objects.filter(pk=message.pk).update(status=Status.QUEUED)  # its worker stopped before finishing
    message = drive(message)
    assert message.status == Status.DEAD
    letter = DeadLetter.objects.get(message=message)
    assert letter.reason == DeadLetter.Reason.UNDELIVERED and "63024" in letter.last_error
    assert twilio.requests == 0, "Twilio, the provider that failed, is not asked again"


def test_a_receipt_carrying_a_requeued_parts_key_finds_its_reply(client, tenant):
    """After a requeue the part keys carry the generation (`<key>:<generation>:<index>`);
    a Twilio callback whose answer was lost still finds the reply by that key."""
    from whatsapp.outbound.answer_parts import part_key

    message = make_reply(tenant)
    Message.objects.filter(pk=message.pk).update(status=Status.SENT, provider="twilio", key_generation=2)
    message.refresh_from_db()
    key = part_key(message, 0)
    assert key == f"{message.idempotency_key}:2:0"
    form = {"MessageSid": "SMlostanswer", "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    response = post_twilio(client, f"/webhooks/twilio/acme/status/?key={key}", form,
                           signed_url=f"http://testserver/webhooks/twilio/acme/status/?key={key}")
    assert response.json()["status"] == "delivered"
