"""Delivery through real Celery worker processes on a real Redis: Celery's own retries,
a worker SIGKILLed in the middle of a send, and a Redis restart that loses the queue."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for
from whatsapp.models import DeliveryAttempt, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PATH = "/webhooks/twilio/acme/"
PHONE = "+15551234567"
# The reconciler runs every second and considers a claim or a queued task lost quickly.
FAST_RECOVERY = {"SEND_LEASE_SECONDS": 4, "RECONCILE_INTERVAL_SECONDS": 1, "RECONCILE_GRACE_SECONDS": 2}


def outbound() -> Message | None:
    return Message.objects.filter(direction=Direction.OUTBOUND).first()


def test_a_5xx_burst_is_retried_by_celery_and_answered_once(client, tenant, twilio, start_worker):
    twilio.faults.errors = [(503, 20503), (502, 0), (500, 20500)]
    worker = start_worker(BREAKER_FAIL_MAX=5)
    assert post_twilio(client, PATH, twilio_form(Body="hello")).status_code == 200

    wait_for(lambda: twilio.sent_to(PHONE), 30, message="the reply after the 5xx burst")
    reply = wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).first(), 10)
    assert list(reply.attempts.values_list("outcome", flat=True)) == ["transient"] * 3 + ["accepted"]
    assert "Retry in" in worker.output(), "the retries go through Celery's own retry"
    time.sleep(1)
    assert len(twilio.sent_to(PHONE)) == 1


@pytest.mark.parametrize("accepted_before_the_kill", [True, False], ids=["accepted", "not-accepted"])
def test_a_worker_sigkilled_mid_send_loses_nothing_and_sends_once(
    client, tenant, twilio, start_worker, accepted_before_the_kill
):
    twilio.faults.hang_seconds = 30
    if accepted_before_the_kill:
        twilio.faults.accept_then_hang_next = 1  # Twilio took it; the answer never came back
    else:
        twilio.faults.hang_next = 1  # the request hangs before Twilio takes it
    worker = start_worker(beat=True, TWILIO_READ_TIMEOUT=20, **FAST_RECOVERY)
    assert post_twilio(client, PATH, twilio_form(Body="hello")).status_code == 200

    wait_for(lambda: twilio.requests >= 1, 20, message="the send to be in flight")
    wait_for(lambda: DeliveryAttempt.objects.filter(outcome="started").exists(), 5)
    os.killpg(worker.proc.pid, signal.SIGKILL)  # the whole worker: main process and pool
    worker.proc.wait(5)
    assert outbound().status == Status.SENDING

    start_worker(beat=True, **FAST_RECOVERY)
    reply = wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).first(), 40,
                     message="the reply to be re-driven after the lease expired")
    time.sleep(1)
    assert len(twilio.sent_to(PHONE)) == 1, "exactly one copy reached the customer"
    first = reply.attempts.order_by("started_at").first()
    assert first.error.startswith("worker stopped during the provider call")
    assert ("it was sent" in first.error) is accepted_before_the_kill


def test_a_redis_restart_that_loses_queued_tasks_loses_no_reply(client, tenant, twilio, start_worker, redis_server):
    # Only the ai queue is consumed at first: the send task waits in Redis.
    ai = start_worker(queues="default,ai", **FAST_RECOVERY)
    assert post_twilio(client, PATH, twilio_form(Body="hello")).status_code == 200
    wait_for(lambda: outbound() and outbound().status == Status.QUEUED, 15, message="the stored reply")
    wait_for(lambda: redis_server.client().llen("send") == 1, 5, message="the send task in Redis")

    ai.stop()
    redis_server.restart()  # the queued send task is gone with it
    assert redis_server.client().llen("send") == 0

    start_worker(beat=True, **FAST_RECOVERY)
    wait_for(lambda: twilio.sent_to(PHONE), 40, message="the reconciler to re-drive the reply")
    time.sleep(1)
    assert len(twilio.sent_to(PHONE)) == 1
    assert outbound().status == Status.SENT


def _worker_connections() -> list[int]:
    """PostgreSQL backends on the test database other than this test's own."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        return [row[0] for row in cursor.fetchall()]


def test_a_worker_keeps_its_database_connection_and_replaces_one_postgresql_closed(
    client, tenant, twilio, start_worker
):
    # One process, so that one connection serves both tasks of a message and the next one.
    worker = start_worker(concurrency=1)
    assert post_twilio(client, PATH, twilio_form(Body="hello")).status_code == 200
    wait_for(lambda: re.search(r"send_message\[[-0-9a-f]+\] succeeded", worker.output()), 20,
             message="the first reply's send task to finish")
    kept = _worker_connections()
    assert kept, "the worker kept its connection after its tasks"

    # PostgreSQL closes it (a restart, an idle timeout): the next task must not fail on it.
    from django.db import connection

    with connection.cursor() as cursor:
        for pid in kept:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    other = "+15557654321"
    assert post_twilio(client, PATH, twilio_form(Body="hello", From=f"whatsapp:{other}",
                                                 WaId=other[1:])).status_code == 200
    wait_for(lambda: twilio.sent_to(other), 20, message="the reply after the connection was closed")
    assert "OperationalError" not in worker.output() and "retry" not in worker.output().lower()
    assert set(_worker_connections()).isdisjoint(kept), "a new connection replaced the closed one"
