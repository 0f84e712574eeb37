"""/healthz and /readyz: a fast answer that names every dependency that is not there.
Real Redis, real Celery workers (their heartbeats), a closed port for what is down."""

from __future__ import annotations

import time

import pytest

from tests.support.ports import free_port
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]


def ready(client) -> tuple[int, dict, float]:
    started = time.perf_counter()
    response = client.get("/readyz")
    return response.status_code, response.json(), time.perf_counter() - started


def test_healthz_answers_while_the_process_runs(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.integration
def test_readyz_is_ready_when_the_database_redis_and_a_worker_for_every_queue_answer(client, tenant, start_worker):
    start_worker(queues="default,ai,send")

    status, body, elapsed = ready(client)

    assert status == 200, body
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"database", "redis", "workers"}  # no tenant uses Baileys: no sidecar needed
    assert elapsed < 0.5


@pytest.mark.integration
def test_readyz_names_the_queue_that_has_no_worker(client, tenant, start_worker):
    start_worker(queues="default,ai")

    status, body, _ = ready(client)

    assert status == 503
    assert body["failed"] == ["workers"]
    assert body["checks"]["workers"]["error"] == "no live worker for queue send"


@pytest.mark.integration
def test_a_worker_that_stops_is_no_longer_counted(client, tenant, start_worker):
    worker = start_worker(queues="default,ai,send")
    assert ready(client)[0] == 200

    worker.stop()

    status, body, _ = ready(client)
    assert status == 503 and body["failed"] == ["workers"]
    assert "default, ai, send" not in body["checks"]["workers"]["error"]  # sorted names
    assert body["checks"]["workers"]["error"] == "no live worker for queue ai, default, send"


def test_readyz_names_redis_when_it_cannot_be_reached_and_still_answers_fast(client, tenant, redis_server, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    status, body, elapsed = ready(client)

    assert status == 503
    assert "redis" in body["failed"]
    assert "refused" in body["checks"]["redis"]["error"].lower()
    assert body["checks"]["database"]["ok"] is True
    assert elapsed < 1.5


def test_readyz_names_redis_when_the_server_stops(client, tenant, redis_server):
    redis_server.stop()
    try:
        status, body, _ = ready(client)
    finally:
        redis_server.start()
    assert status == 503
    assert "redis" in body["failed"] and "workers" in body["failed"]


@pytest.mark.integration
def test_readyz_names_the_sidecar_and_the_baileys_queue_when_a_tenant_uses_baileys(client, tenant, start_worker,
                                                                                   settings):
    tenant.baileys_enabled = True
    tenant.save()
    settings.SIDECAR_URL = f"http://127.0.0.1:{free_port()}"
    start_worker(queues="default,ai,send")

    status, body, elapsed = ready(client)

    assert status == 503
    assert body["failed"] == ["sidecar", "workers"]
    assert body["checks"]["workers"]["error"] == "no live worker for queue baileys"
    assert elapsed < 1.5


@pytest.mark.integration
def test_readyz_is_ready_with_baileys_once_the_lifecycle_worker_runs_the_sidecar(client, tenant, start_worker, settings,
                                                                                 tmp_path):
    tenant.baileys_enabled = True
    tenant.save()
    settings.SIDECAR_URL = f"http://127.0.0.1:{free_port()}"
    start_worker(queues="default,ai,send")
    assert ready(client)[1]["failed"] == ["sidecar", "workers"]

    # The real lifecycle worker starts the real sidecar (sandbox transport) on SIDECAR_URL.
    start_worker(queues="baileys", concurrency=1, SIDECAR_DATA_DIR=tmp_path / "sidecar")

    status, body, _ = wait_for(lambda: (r := ready(client))[0] == 200 and r, 20, message="ready with the sidecar")
    assert body["checks"]["sidecar"]["ok"] is True


def readyz_unavailable(client, settings, **headers):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/readyz", **headers)
    assert response.status_code == 503
    return response.json()


@pytest.mark.parametrize("headers", [
    {"REMOTE_ADDR": "203.0.113.9"},
    {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"},  # through a proxy on this host
    {"REMOTE_ADDR": "203.0.113.9", "HTTP_AUTHORIZATION": "Bearer a-wrong-token"},
])
def test_an_anonymous_caller_learns_only_whether_the_service_is_ready(client, tenant, settings, headers):
    settings.METRICS_TOKEN = "a-long-ops-token"

    assert readyz_unavailable(client, settings, **headers) == {"status": "unavailable"}


@pytest.mark.parametrize("headers", [
    {"REMOTE_ADDR": "203.0.113.9", "HTTP_AUTHORIZATION": "Bearer a-long-ops-token"},
    {"REMOTE_ADDR": "127.0.0.1"},
])
def test_the_token_or_a_caller_on_this_machine_get_the_details(client, tenant, settings, headers):
    settings.METRICS_TOKEN = "a-long-ops-token"

    body = readyz_unavailable(client, settings, **headers)

    assert "redis" in body["failed"] and "refused" in body["checks"]["redis"]["error"].lower()
