"""/metrics: Prometheus numbers that add up across processes, gauges read from the source
of truth at scrape time, and no access without the token (or, without one, from afar)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.metrics import scrape
from tests.support.paths import ROOT
from whatsapp.models import Contact, DeadLetter, Direction, Message, SessionState, Status

pytestmark = pytest.mark.django_db

RECORD = """
import django
django.setup()
from whatsapp import metrics
metrics.INBOUND.labels(provider="twilio").inc({n})
metrics.REPLIES.labels(provider="twilio", outcome="sent").inc()
metrics.END_TO_END.observe({latency})
"""


def test_metrics_add_up_what_several_processes_recorded(client, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "project.settings"}
    for n, latency in ((2, 0.4), (3, 7.0)):  # two worker processes, one after the other
        subprocess.run([sys.executable, "-c", RECORD.format(n=n, latency=latency)], env=env, cwd=ROOT, check=True)

    found = scrape(client)

    assert found[("whatsapp_inbound_messages_total", (("provider", "twilio"),))] == 5
    assert found[("whatsapp_replies_total", (("outcome", "sent"), ("provider", "twilio")))] == 2
    assert found[("whatsapp_reply_seconds_count", ())] == 2
    assert found[("whatsapp_reply_seconds_bucket", (("le", "0.5"),))] == 1
    assert found[("whatsapp_reply_seconds_bucket", (("le", "10.0"),))] == 2


def test_metrics_need_the_bearer_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "a-long-metrics-token"

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer a-long-metrics-token").status_code == 200
    # With a token, the client's address does not matter.
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer a-long-metrics-token", REMOTE_ADDR="203.0.113.9")
    assert ok.status_code == 200


def test_without_a_token_metrics_are_served_only_to_this_machine(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 401
    # Through a proxy on this machine every client would look local: refused.
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 401


def test_in_production_metrics_need_the_token_even_from_this_machine(client, settings):
    settings.METRICS_REQUIRE_TOKEN = True  # what DJANGO_ENV=production sets
    settings.METRICS_TOKEN = ""

    refused = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert refused.status_code == 401 and b"METRICS_TOKEN" in refused.content

    settings.METRICS_TOKEN = "a-long-metrics-token"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer a-long-metrics-token").status_code == 200


def test_metrics_show_open_dead_letters_breakers_and_sessions_as_they_are_now(client, tenant, redis_server):
    from whatsapp.outbound.breakers import get_breaker

    contact = Contact.objects.create(tenant=tenant, phone="+15551234567")
    for reason in ("permanent", "permanent", "exhausted"):
        message = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.OUTBOUND,
                                         status=Status.DEAD, body="x")
        DeadLetter.objects.create(message=message, reason=reason)
    resolved = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.OUTBOUND,
                                      status=Status.DISCARDED, body="x")
    DeadLetter.objects.create(message=resolved, reason="permanent", resolved_at=timezone.now())
    SessionState.objects.create(tenant=tenant, status="logged_out", can_send=False)
    Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, status=Status.RECEIVED,
                           body="anyone?", created_at=timezone.now() - timedelta(minutes=3))
    get_breaker("acme", "baileys").open()
    get_breaker("acme", "twilio")  # used, still closed

    found = scrape(client)

    assert found[("whatsapp_dead_letters_open", (("reason", "permanent"), ("tenant", "acme")))] == 2
    assert found[("whatsapp_dead_letters_open", (("reason", "exhausted"), ("tenant", "acme")))] == 1
    assert found[("whatsapp_breaker_state", (("provider", "baileys"), ("state", "open"), ("tenant", "acme")))] == 1
    assert found[("whatsapp_breaker_state", (("provider", "baileys"), ("state", "closed"), ("tenant", "acme")))] == 0
    assert found[("whatsapp_sessions", (("status", "logged_out"),))] == 1
    assert found[("whatsapp_session_can_send", (("status", "logged_out"), ("tenant", "acme")))] == 0
    assert found[("whatsapp_messages_waiting", (("status", "received"),))] == 1
    assert found[("whatsapp_oldest_unanswered_seconds", ())] >= 180
    assert ("whatsapp_scrape_errors", (("source", "redis"),)) not in found


def test_metrics_still_answer_when_redis_is_down_and_say_so(client, tenant, settings):
    from whatsapp.outbound import breakers

    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    breakers.breaker_redis.cache_clear()
    try:
        found = scrape(client)
    finally:
        breakers.breaker_redis.cache_clear()
    assert found[("whatsapp_scrape_errors", (("source", "redis"),))] == 1
    assert ("whatsapp_messages_waiting", (("status", "received"),)) in found


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_metrics_count_the_replies_of_real_workers_on_different_queues(client, tenant, twilio, start_worker, tmp_path,
                                                                       monkeypatch):
    from tests.support.twilio_webhooks import post_twilio, twilio_form
    from tests.support.waiting import wait_for

    shared = tmp_path / "prometheus"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    start_worker(queues="default,ai", PROMETHEUS_MULTIPROC_DIR=shared)
    start_worker(queues="send", concurrency=2, PROMETHEUS_MULTIPROC_DIR=shared)

    for phone in ("+15551230001", "+15551230002", "+15551230003"):
        assert post_twilio(client, "/webhooks/twilio/acme/", twilio_form(From=f"whatsapp:{phone}")).status_code == 200
    wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).count() == 3, 20,
             message="three replies sent")

    found = wait_for(lambda: (f := scrape(client)).get(
        ("whatsapp_replies_total", (("outcome", "sent"), ("provider", "twilio")))) == 3 and f, 5,
        message="three replies counted")
    assert found[("whatsapp_reply_seconds_count", ())] == 3
    assert found[("whatsapp_delivery_attempts_total", (("outcome", "accepted"), ("provider", "twilio")))] == 3
