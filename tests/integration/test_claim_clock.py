"""The claim on an outgoing message is a lease timed by the database's clock, so a worker
host whose clock runs fast cannot take a message another worker is still sending (which
would send the reply twice), and the reconciler does not re-drive it either."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.delivery import make_reply
from tests.support.waiting import wait_for
from whatsapp.models import Message, Status
from whatsapp.outbound import delivery
from whatsapp.tasks import reconcile_outbound

pytestmark = pytest.mark.django_db

SKEW = timedelta(minutes=10)


@pytest.fixture
def fast_clock(monkeypatch):
    """Make this process a host whose clock runs SKEW ahead (the database's stays right)."""
    real_now = timezone.now

    def run_fast():
        monkeypatch.setattr(timezone, "now", lambda: real_now() + SKEW)

    return run_fast


def test_a_worker_whose_clock_runs_fast_cannot_steal_a_live_claim(tenant, settings, fast_clock):
    settings.SEND_LEASE_SECONDS = 180  # shorter than the skew: the old claim saw it expired
    message = make_reply(tenant)
    assert delivery.claim(message.pk) is not None, "the first worker sends"

    fast_clock()

    assert delivery.claim(message.pk) is None
    assert Message.objects.get(pk=message.pk).status == Status.SENDING


def test_a_claim_made_on_a_fast_host_expires_on_time_when_its_worker_dies(tenant, settings, monkeypatch):
    """The lease is written by the database's clock too: a dead fast host's claim does
    not hold the reply back for minutes beyond SEND_LEASE_SECONDS."""
    settings.SEND_LEASE_SECONDS = 1
    message = make_reply(tenant)
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + SKEW)
    assert delivery.claim(message.pk) is not None
    monkeypatch.setattr(timezone, "now", real_now)  # that worker died; a correct host tries

    assert wait_for(lambda: delivery.claim(message.pk), 5, message="the expired claim to be taken over")


def test_the_reconciler_on_a_fast_host_does_not_re_drive_a_message_still_being_sent(
    tenant, settings, fast_clock, redis_server
):
    settings.SEND_LEASE_SECONDS = 180
    message = make_reply(tenant)
    assert delivery.claim(message.pk) is not None

    fast_clock()

    assert reconcile_outbound()["sending"] == 0
    assert redis_server.client().llen("send") == 0
