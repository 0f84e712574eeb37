"""Exactly one lifecycle worker owns the sidecar and its WhatsApp sockets, even when Redis
(which holds its lease) becomes unreachable or the owner is SIGKILLed: real worker
processes, the real sidecar (sandbox) and the suite's own redis-server, which these
tests stop and start."""

from __future__ import annotations

import os
import re
import signal
import time

import psutil
import pytest

from tests.support.waiting import wait_for
from whatsapp.models import SessionState
from whatsapp.sessions import lifecycle
from whatsapp.sessions.supervisor import LEASE_KEY

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


def test_a_worker_that_cannot_renew_its_lease_stops_the_sidecar_before_the_lease_can_expire(
    baileys_tenant, sandbox, lifecycle_worker, redis_server
):
    worker = lifecycle_worker(LIFECYCLE_LEASE_TTL_SECONDS=TTL)
    connect("acme")
    [sidecar] = sidecar_pids(worker)
    # The lease cannot expire before this (a renewal in between only moves it later).
    expires_at = time.monotonic() + redis_server.client().pttl(LEASE_KEY) / 1000

    redis_server.stop()  # unreachable for the worker; a successor elsewhere might still reach it
    try:
        wait_for(lambda: gone(sidecar) and not sandbox.healthy(), TTL + 5,
                 message="the sidecar and its sessions stopped")
        stopped_at = time.monotonic()
    finally:
        redis_server.start()

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

    os.killpg(owner.proc.pid, signal.SIGKILL)  # its sidecar gets SIGTERM (it dies with its parent)

    wait_for(lambda: "lifecycle lease taken" in successor.output(), TTL + 10, message="the successor to take over")
    assert successor.proc.poll() is None
    wait_for(lambda: sandbox.healthy() and sandbox.status("acme").get("canSend"), 30,
             message="the successor's sidecar with the session reconnected")
    assert len(sidecar_pids(successor)) == 1
