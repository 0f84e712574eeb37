"""Fixtures for tests that run the real Baileys sidecar (sandbox transport) the way
production does: started by the lifecycle worker, posting its webhooks to a real Django
server over HTTP. A test module uses them with:

    pytest_plugins = ["tests.sidecar_fixtures"]
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.conftest import ROOT, database_url, free_port, wait_for
from tests.web_server import gunicorn

SIDECAR_DIR = ROOT / "whatsapp" / "sidecar"


class Sandbox:
    """The sidecar's HTTP API and its sandbox controls (a simulated phone and WhatsApp)."""

    def __init__(self, base: str, token: str):
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def healthy(self) -> bool:
        try:
            return self.http.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def inbound(self, tenant: str, **body) -> dict:
        response = self.http.post(f"{self.base}/sandbox/{tenant}/inbound", json=body, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def disconnect(self, tenant: str, code: int) -> None:
        response = self.http.post(f"{self.base}/sandbox/{tenant}/disconnect", json={"code": code}, timeout=5)
        assert response.status_code == 200, response.text

    def behavior(self, tenant: str, **patch) -> dict:
        response = self.http.post(f"{self.base}/sandbox/{tenant}/behavior", json=patch, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()["behavior"]

    def release_acks(self, tenant: str, status: str = "server") -> list[str]:
        """WhatsApp's server ack (or error) for the sends whose ack the sandbox withheld."""
        response = self.http.post(f"{self.base}/sandbox/{tenant}/acks", json={"status": status}, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()["released"]

    def sent(self, tenant: str) -> list[dict]:
        return self.http.get(f"{self.base}/sandbox/{tenant}/sent", timeout=5).json()["sent"]

    def state(self, tenant: str) -> dict:
        return self.http.get(f"{self.base}/sandbox/{tenant}/state", timeout=5).json()

    def status(self, tenant: str) -> dict:
        return self.http.get(f"{self.base}/sessions/{tenant}/status", timeout=5).json()


def signed_sidecar_post(url: str, payload: dict, secret: str | None = None) -> requests.Response:
    """POST a webhook exactly as the sidecar signs it (README: HMAC over "<ts>.<body>")."""
    import json
    import time

    from whatsapp.inbound.signatures import sidecar_signature

    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Sidecar-Timestamp": timestamp,
        "X-Sidecar-Signature": sidecar_signature(secret or settings.SIDECAR_WEBHOOK_SECRET, timestamp, body),
    }
    return requests.post(url, data=body, headers=headers, timeout=5)


def _worker_env(redis_url: str, **extra) -> dict:
    return {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "SIDECAR_URL": settings.SIDECAR_URL,
        "SIDECAR_TOKEN": settings.SIDECAR_TOKEN,
        "SIDECAR_WEBHOOK_SECRET": settings.SIDECAR_WEBHOOK_SECRET,
        "LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
        **{k: str(v) for k, v in extra.items()},
    }


@pytest.fixture
def sandbox(settings) -> Sandbox:
    """A free port for the sidecar; this process and every worker started after this
    fixture point SIDECAR_URL at it."""
    if not (SIDECAR_DIR / "node_modules").exists():
        pytest.fail("whatsapp/sidecar/node_modules is missing: run `make sidecar-deps`")
    settings.SIDECAR_URL = f"http://127.0.0.1:{free_port()}"
    return Sandbox(settings.SIDECAR_URL, settings.SIDECAR_TOKEN)


@pytest.fixture
def live_django(redis_server, sandbox, tmp_path, request):
    """A real Django server (gunicorn) on a free port against the test database, with
    the same environment as the workers: the sidecar posts its webhooks here."""
    logfile = tmp_path / "web.log"
    with gunicorn(_worker_env(redis_server.url), logfile, "--workers", "1", "--threads", "4") as url:
        yield url
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(f"--- {logfile} ---\n{Path(logfile).read_text()[-4000:]}")


@pytest.fixture
def lifecycle_worker(start_worker, live_django, sandbox, tmp_path):
    """Start the lifecycle worker (queue `baileys`, concurrency 1, with beat) as the
    Procfile does; it takes the lease and runs the sidecar in sandbox mode."""

    def start(wait_ready: bool = True, **overrides):
        env = {
            "SIDECAR_TRANSPORT": "sandbox",
            "SIDECAR_DATA_DIR": tmp_path / "sidecar-data",
            "SIDECAR_WEBHOOK_BASE": live_django,
            "SIDECAR_WEBHOOK_SECRET": settings.SIDECAR_WEBHOOK_SECRET,
            "SIDECAR_RETRY_BASE_MS": 200,
            "SESSION_HEALTH_INTERVAL_SECONDS": 1,
            **overrides,
        }
        worker = start_worker(queues="baileys", concurrency=1, beat=True, wait_ready=wait_ready, **env)
        if wait_ready:
            wait_for(sandbox.healthy, 15, message="the sidecar started by the lifecycle worker")
        return worker

    return start
