"""/healthz: the process is up. /readyz: the process can do its job right now, i.e. the
database, Redis, the Baileys sidecar of every shard that has WhatsApp Web tenants (only
when some tenant uses it; check "sidecar" for the default shard, "sidecar:<shard>" for
the others) and a live worker for every queue (each such shard's lifecycle queue) answer. Every check is bounded to well under a second. Anyone gets the
answer (200 or 503, and `{"status": ...}`); the details, which name each failed dependency
and its error, need the ops token (METRICS_TOKEN) or a caller on this machine."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from project.redis_clients import redis_client
from whatsapp.ops import access, heartbeat
from whatsapp.sessions.shards import lifecycle_queue
from whatsapp.sessions.sidecar_client import sidecar_for_shard

# Bounds for each probe; /readyz must answer fast even when everything is down.
PROBE_TIMEOUT = 0.5


@never_cache
@require_safe
def healthz(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def check_database() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return None


def check_redis() -> str | None:
    client = redis_client(PROBE_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()
    return None


def baileys_shards() -> list[str]:
    """The shards that have a WhatsApp Web session to look after (none: no sidecar needed)."""
    from whatsapp.models import Tenant

    names = Tenant.objects.filter(baileys_enabled=True).values_list("shard_id", flat=True).distinct()
    return sorted({name or settings.SESSION_DEFAULT_SHARD for name in names})


def sidecar_required() -> bool:
    return bool(baileys_shards())


def check_sidecar(shard: str | None = None) -> str | None:
    """The sidecar of the shard's current owner (its lease row says where) answers."""
    sidecar = sidecar_for_shard(shard or settings.SESSION_DEFAULT_SHARD)  # SidecarUnavailable: no owner
    response = sidecar.request("GET", "/healthz", timeout=(PROBE_TIMEOUT, PROBE_TIMEOUT))
    if response.status_code != 200:
        return f"GET {sidecar.base}/healthz answered {response.status_code}"
    return None


def sidecar_check_name(shard: str) -> str:
    return "sidecar" if shard == settings.SESSION_DEFAULT_SHARD else f"sidecar:{shard}"


def required_queues(baileys: bool | list[str]) -> list[str]:
    """Every queue Celery is configured with; the lifecycle queues only of the shards that
    have a WhatsApp Web session to look after (baileys: those shards; True: the default)."""
    from project.celery import app

    names = [q.name for q in app.conf.task_queues or []] or [app.conf.task_default_queue]
    names = [n for n in names if not n.startswith("baileys")]
    shards = [settings.SESSION_DEFAULT_SHARD] if baileys is True else list(baileys or [])
    return sorted(set(names) | {lifecycle_queue(shard) for shard in shards})


def check_workers(queues: list[str]) -> str | None:
    counts = heartbeat.live_workers(queues)
    missing = [queue for queue, count in counts.items() if not count]
    if missing:
        return "no live worker for queue " + ", ".join(missing)
    return None


def _run(check: Callable[..., str | None], *args) -> dict:
    started = time.perf_counter()
    try:
        problem = check(*args)
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is the answer
        problem = f"{type(exc).__name__}: {exc}"
    result = {"ok": problem is None, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if problem:
        result["error"] = problem[:300]
    return result


def readiness() -> dict:
    checks: dict[str, dict] = {"database": _run(check_database)}
    shards: list[str] = []
    if checks["database"]["ok"]:
        try:
            shards = baileys_shards()
        except Exception:  # noqa: BLE001 - the database check above already tells
            shards = []
    checks["redis"] = _run(check_redis)
    for shard in shards:
        checks[sidecar_check_name(shard)] = _run(check_sidecar, shard)
    baileys = shards
    if checks["redis"]["ok"]:
        checks["workers"] = _run(check_workers, required_queues(baileys))
    else:
        checks["workers"] = {"ok": False, "ms": 0, "error": "unknown: Redis is unreachable"}
    failed = sorted(name for name, result in checks.items() if not result["ok"])
    return {"status": "ok" if not failed else "unavailable", "failed": failed, "checks": checks}


@never_cache
@require_safe
def readyz(request) -> JsonResponse:
    body = readiness()
    status = 200 if not body["failed"] else 503
    if not (access.has_token(request) or access.from_loopback(request)):
        body = {"status": body["status"]}  # error texts name hosts, ports and queues
    return JsonResponse(body, status=status)
