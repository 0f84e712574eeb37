"""The one client of the sidecar's HTTP contract (whatsapp/sidecar/README.md). Every caller
(lifecycle tasks, sends, refused-inbound collection, erasure, /readyz, demo faults) gets
it per tenant or per shard, from the shard's lease row (docs/SCALING.md):

- sidecar_for(tenant): the sidecar of the shard that owns the tenant's session, with that
  ownership's fencing token in the header X-Fencing-Token. The sidecar answers
  409 {"error": "fenced"} when the token is not its own (a caller that read the row just
  before a takeover, or an address reused by another shard's sidecar): that is
  "unavailable, retry later", and the next call reads the row again.
- A shard no process has ever owned (fencing_token 0: a single-host install started
  without shards, or a test that runs the sidecar itself) is reached at SIDECAR_URL,
  without a fencing header, as before shards existed.

No cache: the row is one primary-key read, much cheaper than the HTTP call after it, and
a send must see a takeover or a move at once. Paths quote the tenant slug. Every call is
bounded by a timeout."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import requests
from django.conf import settings
from django.db.models import BooleanField, Case, Value, When
from django.db.models.functions import Now

from whatsapp.sessions.models import Shard
from whatsapp.sessions.shards import default_shard, lifecycle_queue, shard_name_of  # noqa: F401 - re-exported

FENCING_HEADER = "X-Fencing-Token"

# One HTTP connection pool per sidecar address and process, kept alive between calls
# (sends go one after the other in a send worker; a new connection each time costs more).
_pools: dict[str, requests.Session] = {}


class SidecarUnavailable(Exception):
    """The sidecar did not answer (not running, restarting, hung), refused our fencing
    token, or its shard has no owner right now."""


@dataclass(frozen=True)
class Route:
    """Where a shard's sidecar is, as its lease row says."""

    shard: str
    url: str
    fencing_token: int  # 0: no fencing (a shard never owned)


def route_for_shard(shard: str) -> Route:
    row = (
        Shard.objects.filter(name=shard)
        .annotate(live=Case(When(lease_expires_at__gt=Now(), then=Value(True)), default=Value(False),
                            output_field=BooleanField()))
        .values("owner", "fencing_token", "sidecar_url", "live")
        .first()
    )
    if row is None or row["fencing_token"] == 0:
        return Route(shard, settings.SIDECAR_URL, 0)
    if not (row["owner"] and row["live"] and row["sidecar_url"]):
        raise SidecarUnavailable(f"shard {shard!r} has no owner right now (its lease expired or was released)")
    return Route(shard, row["sidecar_url"], row["fencing_token"])


def sidecar_for_shard(shard: str) -> SidecarClient:
    route = route_for_shard(shard)
    return SidecarClient(route.url, fencing_token=route.fencing_token, shard=shard)


def sidecar_for(tenant) -> SidecarClient:
    """The client of the sidecar that runs this tenant's session now."""
    return sidecar_for_shard(shard_name_of(tenant))


def is_fenced(response: requests.Response) -> bool:
    if response.status_code != 409:
        return False
    try:
        return (response.json() or {}).get("error") == "fenced"
    except ValueError:
        return False


class SidecarClient:
    def __init__(self, base: str | None = None, token: str | None = None, fencing_token: int = 0,
                 shard: str = "") -> None:
        self.base = (base or settings.SIDECAR_URL).rstrip("/")
        self.shard = shard or default_shard()
        self.fencing_token = fencing_token
        self.headers = {"Authorization": f"Bearer {token or settings.SIDECAR_TOKEN}"}
        if fencing_token:
            self.headers[FENCING_HEADER] = str(fencing_token)
        self.timeout = (settings.SIDECAR_CONNECT_TIMEOUT, settings.SIDECAR_READ_TIMEOUT)
        if self.base not in _pools:
            _pools[self.base] = requests.Session()
        self.http = _pools[self.base]

    # -- raw HTTP (the callers that classify failures themselves: sends) ----------------

    @staticmethod
    def session_path(tenant: str, suffix: str = "") -> str:
        return f"/sessions/{quote(tenant, safe='')}{suffix}"

    def request(self, method: str, path: str, timeout=None, **kwargs) -> requests.Response:
        """One HTTP call; requests' exceptions pass through (a send tells a refused
        connection, which sent nothing, from a lost one)."""
        return self.http.request(method, f"{self.base}{path}", headers=self.headers,
                                 timeout=timeout or self.timeout, **kwargs)

    # -- lifecycle (the owner's tasks) ----------------------------------------------------

    def _call(self, method: str, tenant: str, suffix: str, timeout=None) -> dict:
        try:
            response = self.request(method, self.session_path(tenant, suffix), timeout=timeout)
        except requests.RequestException as exc:
            raise SidecarUnavailable(f"sidecar {method} {suffix}: {exc}") from exc
        if is_fenced(response):
            raise SidecarUnavailable(f"sidecar {method} {suffix}: fenced (token {self.fencing_token} is not its own)")
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

    # -- sandbox transport (demo mode, tests) ---------------------------------------------

    def sandbox_scan(self, tenant: str) -> bool:
        """The simulated phone scans the session's QR code. False when the session shows
        no QR code to scan."""
        try:
            response = self.request("POST", f"/sandbox/{quote(tenant, safe='')}/scan", json={})
        except requests.RequestException as exc:
            raise SidecarUnavailable(f"sidecar POST /scan: {exc}") from exc
        if response.status_code == 409 and not is_fenced(response):
            return False
        if response.status_code != 200:
            raise SidecarUnavailable(f"sidecar POST /scan: HTTP {response.status_code}")
        return True

    def media_path(self, tenant: str, media_id: str) -> str:
        return self.session_path(tenant, f"/media/{quote(media_id, safe='')}")

    def media_url(self, tenant: str, media_id: str) -> str:
        """An inbound file the sidecar downloaded (whatsapp.media fetches it with auth())."""
        return f"{self.base}{self.media_path(tenant, media_id)}"

    def auth(self) -> requests.auth.AuthBase:
        """This client's headers (bearer token, fencing token) for a request made elsewhere."""
        return _Headers(self.headers)

    def delete_media(self, tenant: str, media_id: str) -> bool:
        """Deletes that file once Django has it; False if the sidecar did not answer."""
        try:
            response = self.request("DELETE", self.media_path(tenant, media_id))
        except requests.RequestException:
            return False
        return response.status_code == 204

    def sandbox_behavior(self, tenant: str, **patch) -> requests.Response:
        return self.request("POST", f"/sandbox/{quote(tenant, safe='')}/behavior", json=patch, timeout=5)

    def healthy(self, timeout: tuple[float, float] = (1.0, 2.0)) -> bool:
        try:
            return self.request("GET", "/healthz", timeout=timeout).status_code == 200
        except requests.RequestException:
            return False


class _Headers(requests.auth.AuthBase):
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def __call__(self, request):
        request.headers.update(self.headers)
        return request
