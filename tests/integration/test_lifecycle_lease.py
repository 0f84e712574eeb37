"""Exactly one lifecycle worker owns the sidecar and its WhatsApp sockets, even when the
database (which holds its shard's lease) becomes unreachable for it or the owner is
SIGKILLed: real worker processes, the real sidecar (sandbox), the test database reached
through a TCP forwarder that a test cuts, and the suite's own redis-server."""

from __future__ import annotations

import os
import re
import signal
import time

import psutil
import pytest
from django.db import connection
from django.db.models import F
from django.db.models.functions import Now

from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for
from whatsapp.models import SessionState, Shard
from whatsapp.sessions import lifecycle

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TTL = 6  # seconds: LIFECYCLE_LEASE_TTL_SECONDS for these workers, so the tests stay short


@pytest.fixture
def baileys_tenant(tenant):
    tenant.baileys_enabled = True
    tenant.save()
    return tenant


def connect(tenant_slug: str) -> None:
    lifecycle.start.delay(tenant_slug)
    wait_for(lambda: SessionState.objects.filter(tenant__slug=tenant_slug, status="connected").exists(), 20,
             message="the session to be connected")


def sidecar_pids(worker) -> list[int]:
    return [int(pid) for pid in re.findall(r"sidecar started \(pid (\d+)\)", worker.output())]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def lease_left() -> float:
    """Seconds until the default shard's lease expires, by the database's clock."""
    left = Shard.objects.filter(name="default").annotate(left=F("lease_expires_at") - Now()).values_list(
        "left", flat=True).get()
    return left.total_seconds()


def test_a_worker_that_cannot_renew_its_lease_stops_the_sidecar_before_the_lease_can_expire(
    baileys_tenant, sandbox, lifecycle_worker
):
    db = connection.settings_dict
    proxy = TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
    through_proxy = f"postgres://{db.get('USER') or 'postgres'}@127.0.0.1:{proxy.port}/{db['NAME']}"
    worker = lifecycle_worker(LIFECYCLE_LEASE_TTL_SECONDS=TTL, DATABASE_URL=through_proxy)
    connect("acme")
    [sidecar] = sidecar_pids(worker)
    # The lease cannot expire before this (a renewal in between only moves it later).
    expires_at = time.monotonic() + lease_left()

    proxy.cut()  # the database is unreachable for this worker; a successor elsewhere might still reach it
    wait_for(lambda: gone(sidecar) and not sandbox.healthy(), TTL + 5, message="the sidecar and its sessions stopped")
    stopped_at = time.monotonic()

    assert stopped_at < expires_at, f"the sidecar ran {stopped_at - expires_at:.1f} s past the lease"
    assert "lifecycle lease could not be renewed" in worker.output()
    wait_for(lambda: worker.proc.poll() is not None, 20, message="the worker to shut down")


def test_a_successor_started_while_a_killed_owner_lease_is_live_waits_and_then_takes_over(
    baileys_tenant, sandbox, lifecycle_worker
):
    owner = lifecycle_worker(LIFECYCLE_LEASE_TTL_SECONDS=TTL)
    connect("acme")

    successor = lifecycle_worker(wait_ready=False, LIFECYCLE_LEASE_TTL_SECONDS=TTL)
    wait_for(lambda: "waiting for the lifecycle lease" in successor.output(), 15,
             message="the successor to say that it waits")
    assert successor.proc.poll() is None, "it waits instead of exiting"
    assert sidecar_pids(successor) == [], "no second sidecar while the owner lives"
    assert sandbox.healthy()

    token = Shard.objects.get(name="default").fencing_token
    os.killpg(owner.proc.pid, signal.SIGKILL)  # its sidecar gets SIGTERM (it dies with its parent)

    wait_for(lambda: "lifecycle lease taken" in successor.output(), TTL + 10, message="the successor to take over")
    assert Shard.objects.get(name="default").fencing_token == token + 1
    assert successor.proc.poll() is None
    wait_for(lambda: sandbox.healthy() and sandbox.status("acme").get("canSend"), 30,
             message="the successor's sidecar with the session reconnected")
    assert len(sidecar_pids(successor)) == 1
