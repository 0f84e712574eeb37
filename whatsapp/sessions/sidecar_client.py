"""The lifecycle side of the sidecar's HTTP contract (whatsapp/sidecar/README.md): start,
stop, logout, status, sending-status. Only the lifecycle worker uses it; sends go through
whatsapp.outbound.providers.baileys. Every call is bounded by a timeout."""

from __future__ import annotations

from urllib.parse import quote

import requests
from django.conf import settings


class SidecarUnavailable(Exception):
    """The sidecar did not answer (not running, restarting, or hung)."""


class SidecarClient:
    def __init__(self, base: str | None = None, token: str | None = None) -> None:
        self.base = (base or settings.SIDECAR_URL).rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or settings.SIDECAR_TOKEN}"
        self.timeout = (settings.SIDECAR_CONNECT_TIMEOUT, settings.SIDECAR_READ_TIMEOUT)

    def _call(self, method: str, tenant: str, suffix: str, timeout=None) -> dict:
        url = f"{self.base}/sessions/{quote(tenant, safe='')}{suffix}"
        try:
            response = self.session.request(method, url, timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            raise SidecarUnavailable(f"sidecar {method} {suffix}: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (401, 404):
            raise SidecarUnavailable(f"sidecar {method} {suffix}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise SidecarUnavailable(f"sidecar {method} {suffix}: not JSON") from exc

    def status(self, tenant: str) -> dict:
        return self._call("GET", tenant, "/status")

    def sending_status(self, tenant: str) -> dict:
        return self._call("GET", tenant, "/sending-status")

    def start(self, tenant: str) -> dict:
        # Answers once the start has ended (connected, QR shown, closed or timed out).
        return self._call("POST", tenant, "/start", timeout=(self.timeout[0], settings.SIDECAR_START_TIMEOUT))

    def stop(self, tenant: str) -> dict:
        # Waits for in-flight sends, each bounded by the sidecar's send timeout.
        return self._call("POST", tenant, "/stop", timeout=(self.timeout[0], 30.0))

    def logout(self, tenant: str) -> dict:
        return self._call("POST", tenant, "/logout", timeout=(self.timeout[0], 30.0))

    def sandbox_scan(self, tenant: str) -> bool:
        """Sandbox transport only: the simulated phone scans the session's QR code. False
        when the session shows no QR code to scan."""
        url = f"{self.base}/sandbox/{quote(tenant, safe='')}/scan"
        try:
            response = self.session.post(url, json={}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SidecarUnavailable(f"sidecar POST /scan: {exc}") from exc
        if response.status_code == 409:
            return False
        if response.status_code != 200:
            raise SidecarUnavailable(f"sidecar POST /scan: HTTP {response.status_code}")
        return True

    def media_url(self, tenant: str, media_id: str) -> str:
        """An inbound file the sidecar downloaded (GET with the bearer token; whatsapp.media)."""
        return f"{self.base}/sessions/{quote(tenant, safe='')}/media/{quote(media_id, safe='')}"

    def delete_media(self, tenant: str, media_id: str) -> bool:
        """Deletes that file once Django has it; False if the sidecar did not answer."""
        try:
            response = self.session.delete(self.media_url(tenant, media_id), timeout=self.timeout)
        except requests.RequestException:
            return False
        return response.status_code == 204

    def healthy(self) -> bool:
        try:
            return self.session.get(f"{self.base}/healthz", timeout=(1.0, 2.0)).status_code == 200
        except requests.RequestException:
            return False
