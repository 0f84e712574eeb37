"""For tests that run the real Baileys sidecar (sandbox transport) the way production
does: started by the lifecycle worker, posting its webhooks to a real Django server over
HTTP. The fixtures (sandbox, live_django, lifecycle_worker) are in
tests/integration/conftest.py; these are the helpers they and the tests share."""

from __future__ import annotations

import os

import requests
from django.conf import settings

from tests.support.database import database_url
from tests.support.paths import ROOT

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


def worker_env(redis_url: str, **extra) -> dict:
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
