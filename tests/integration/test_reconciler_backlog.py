"""The reconciler re-drives lost tasks; a queue that is only behind must not get a copy of
its whole backlog every grace period (real Django, real Redis broker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bots.tasks import generate_reply
from whatsapp.models import Contact, Direction, Message, Status
from whatsapp.tasks import reconcile_outbound

pytestmark = pytest.mark.django_db


def test_a_backlog_that_outlasts_the_grace_period_is_not_multiplied_by_the_reconciler(tenant, redis_server):
    contact = Contact.objects.create(tenant=tenant, phone="+15551234567", last_twilio_inbound_at=timezone.now())
    long_ago = timezone.now() - timedelta(minutes=2)
    for i in range(3):
        Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, body=f"q{i}",
                               status=Status.RECEIVED, created_at=long_ago + timedelta(seconds=i))
    for _ in range(500):  # the ai workers are a full batch behind
        generate_reply.delay(0)

    assert reconcile_outbound()["inbound"] == 0, "nothing is added to a queue that is only behind"

    with generate_reply.app.connection_for_write() as conn:
        conn.default_channel.queue_purge("ai")  # the workers caught up
    assert reconcile_outbound()["inbound"] == 3, "lost tasks are re-driven once the queue is short"
