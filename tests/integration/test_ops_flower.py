"""Flower, as the Procfile runs it (flowerconfig.py): behind a login, refusing to start
in production without one, and listing every queue, `baileys` included, even when no
worker consumes it (the queue that piles up is the one to see)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from tests.support.paths import ROOT
from tests.support.ports import free_port
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LOGIN = ("ops", "flower-test-password")


@pytest.fixture
def flower(redis_server, tmp_path):
    port = free_port()
    env = {**os.environ, "DJANGO_ENV": "test", "REDIS_URL": redis_server.url, "FLOWER_BASIC_AUTH": ":".join(LOGIN)}
    log = open(tmp_path / "flower.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "project", "flower", "--address=127.0.0.1", f"--port={port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )

    def up():
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1).status_code == 200
        except requests.RequestException:
            return proc.poll() is not None

    wait_for(up, 30, message="flower to start")
    assert proc.poll() is None, (tmp_path / "flower.log").read_text()
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    log.close()


def test_flower_asks_for_the_login_from_the_environment(flower):
    assert requests.get(f"{flower}/", timeout=5).status_code == 401
    assert requests.get(f"{flower}/", auth=("ops", "wrong"), timeout=5).status_code == 401
    assert requests.get(f"{flower}/", auth=LOGIN, timeout=5).status_code == 200


def test_flower_lists_every_queue_even_one_without_a_worker(flower, start_worker):
    start_worker(queues="default,ai,send")
    # Flower has seen the worker (and its queues) ...
    workers = wait_for(lambda: requests.get(f"{flower}/api/workers?refresh=1", auth=LOGIN, timeout=10).json(), 20,
                       message="flower to see the worker")
    assert any(name.startswith("test-default,ai,send@") for name in workers)

    response = requests.get(f"{flower}/api/queues/length", auth=LOGIN, timeout=10)

    # ... and still lists the lifecycle queue nobody consumes.
    names = {q["name"] for q in response.json()["active_queues"]}
    assert names == {"default", "ai", "send", "baileys"}


def test_flower_refuses_to_start_in_production_without_a_login(redis_server):
    env = {
        **os.environ,
        "DJANGO_ENV": "production",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "example.com",
        "TWILIO_AUTH_TOKEN": "prod-twilio-token",
        "SIDECAR_WEBHOOK_SECRET": "prod-webhook-secret",
        "SIDECAR_TOKEN": "prod-sidecar-token",
        "FIELD_ENCRYPTION_KEYS": "aGVyZS1pcy1hLXRlc3QtZmVybmV0LWtleS0zMmJ5dGU=",
        "REDIS_URL": redis_server.url,
        "FLOWER_BASIC_AUTH": "",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "project", "flower", "--address=127.0.0.1", f"--port={free_port()}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "refuses to start in production without a login" in proc.stdout + proc.stderr
