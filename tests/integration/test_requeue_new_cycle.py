"""A requeue from the dead letters starts a new delivery cycle with new part keys: an
unknown outcome of the previous cycle, which staff have looked at, no longer blocks it.
On the real sidecar (sandbox transport) run by the lifecycle worker, with a real send
worker and the fake Twilio."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.support.delivery import make_reply
from tests.support.waiting import wait_for
from whatsapp.models import DeadLetter, DeliveryAttempt, SessionState, Status
from whatsapp.outbound.tasks import send_message

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PHONE = "+15551234567"


def dead_letter_with_unknown_whatsapp_outcome(tenant, sandbox, lifecycle_worker, start_worker, twilio):
    """A reply whose WhatsApp send timed out: the sidecar records its outcome as unknown
    (it may have reached the phone), and after the resolve window it is a dead letter."""
    tenant.baileys_enabled = True
    tenant.save()
    lifecycle_worker(SIDECAR_SEND_TIMEOUT_MS=800)
    start_worker(queues="send", concurrency=1, SEND_AMBIGUOUS_RESOLVE_SECONDS=1, SIDECAR_READ_TIMEOUT=4)
    from whatsapp.sessions import lifecycle

    lifecycle.start.delay("acme")
    wait_for(lambda: SessionState.objects.filter(tenant=tenant, can_send=True).exists(), 20, message="connected")
    # The session is half-open: the send is written and never answered.
    sandbox.http.post(f"{sandbox.base}/sandbox/acme/behavior", json={"hang": True}, timeout=5)
    reply = make_reply(tenant, body="Your order is ready.")
    send_message.delay(reply.pk)
    letter = wait_for(lambda: DeadLetter.objects.filter(message=reply).first(), 30, message="the dead letter")
    assert letter.reason == DeadLetter.Reason.AMBIGUOUS
    assert twilio.sent_to(PHONE) == []
    return reply, letter


def requeue_in_the_admin(client, letter) -> None:
    client.force_login(User.objects.create_superuser("sam", password="pw-for-tests-only"))
    client.post("/admin/whatsapp/deadletter/", {"action": "requeue_selected", "_selected_action": [letter.pk]})


def test_a_requeued_reply_whose_whatsapp_send_has_an_unknown_outcome_is_delivered_through_twilio(
    client, tenant, sandbox, lifecycle_worker, start_worker, twilio
):
    reply, letter = dead_letter_with_unknown_whatsapp_outcome(tenant, sandbox, lifecycle_worker, start_worker, twilio)

    # The phone is unlinked; staff checked that the customer has nothing and requeue.
    sandbox.disconnect("acme", 401)
    wait_for(lambda: SessionState.objects.filter(tenant=tenant, can_send=False).exists(), 10, message="logged out")
    requeue_in_the_admin(client, letter)

    sent = wait_for(lambda: twilio.sent_to(PHONE), 30, message="the reply at Twilio")
    assert [m["body"] for m in sent] == ["Your order is ready."]
    reply = wait_for(lambda: type(reply).objects.filter(pk=reply.pk, status=Status.SENT).first(), 10)
    assert (reply.provider, reply.key_generation) == ("twilio", 1)
    # The first cycle's unknown attempt stays in the record as it was.
    assert DeliveryAttempt.objects.filter(message=reply, key_generation=0, outcome="ambiguous").exists()
    assert DeadLetter.objects.filter(message=reply).count() == 1


def test_a_requeued_reply_with_an_unknown_outcome_goes_out_through_the_session_once_it_answers_again(
    client, tenant, sandbox, lifecycle_worker, start_worker, twilio
):
    reply, letter = dead_letter_with_unknown_whatsapp_outcome(tenant, sandbox, lifecycle_worker, start_worker, twilio)

    sandbox.http.post(f"{sandbox.base}/sandbox/acme/behavior", json={"hang": False}, timeout=5)
    requeue_in_the_admin(client, letter)

    reply = wait_for(lambda: type(reply).objects.filter(pk=reply.pk, status=Status.SENT).first(), 30,
                     message="the reply sent")
    assert reply.provider == "baileys"
    assert [m["text"] for m in sandbox.sent("acme")] == ["Your order is ready."]
    assert twilio.sent_to(PHONE) == []
