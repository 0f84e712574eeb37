"""End to end with the real sidecar (sandbox transport) run by the lifecycle worker: a
message Django refuses (here: its tenant was renamed while the session ran) is kept by
the sidecar, collected by the lifecycle worker's beat task into a dead letter, deleted
from the sidecar, and answered once staff fix the slug and press "store and answer"."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.support.waiting import wait_for
from whatsapp.models import DeadLetter, Direction, Message, SessionState, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_message_refused_after_a_tenant_rename_reaches_staff_and_is_answered_after_the_fix(
    client, tenant, sandbox, lifecycle_worker, start_worker, twilio
):
    tenant.baileys_enabled = True
    # The answer may go out either way: the session may still be settling after the
    # rename and its fix (the health check follows the slug), so Twilio has a template.
    tenant.twilio_template_sid = "HX" + "0" * 32
    tenant.save()
    lifecycle_worker(SIDECAR_WEBHOOK_AUTH_RETRY_MS=300, REJECTED_INBOUND_INTERVAL_SECONDS=1)
    start_worker(queues="default,ai,send")
    from whatsapp.sessions import lifecycle

    lifecycle.start.delay("acme")
    wait_for(lambda: SessionState.objects.filter(tenant=tenant, can_send=True).exists(), 20, message="connected")

    type(tenant).objects.filter(pk=tenant.pk).update(slug="acme-bakery")  # renamed; the session still posts to /acme/
    sandbox.inbound("acme", **{"from": "15551234567", "text": "Is the shop open today?", "pushName": "Dana"})

    letter = wait_for(lambda: DeadLetter.objects.filter(kind="refused").first(), 30, message="the dead letter")
    assert letter.reason == DeadLetter.Reason.UNKNOWN_TENANT and letter.tenant_slug == "acme"
    assert letter.payload["text"] == "Is the shop open today?"
    wait_for(lambda: sandbox.http.get(f"{sandbox.base}/inbound/rejected", timeout=5).json()["items"] == [], 10,
             message="the item deleted from the sidecar")
    assert not Message.objects.filter(direction=Direction.INBOUND).exists()

    type(tenant).objects.filter(pk=tenant.pk).update(slug="acme")  # staff fix the slug
    # Meanwhile the health check knew the session only by the new slug; after the fix it
    # brings the "acme" session back (as the Sessions page shows staff) before they answer.
    wait_for(lambda: sandbox.status("acme").get("canSend"), 30, message="the session under its slug again")
    client.force_login(User.objects.create_superuser("sam", password="pw-for-tests-only"))
    client.post(f"/admin/whatsapp/deadletter/{letter.pk}/resolve/", {"store": "1"})

    reply = wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).first(), 30,
                     message="the answer sent")
    assert reply.in_reply_to.body == "Is the shop open today?"
    letter.refresh_from_db()
    assert letter.resolution == "stored" and letter.message == reply.in_reply_to
    assert DeadLetter.objects.count() == 1
