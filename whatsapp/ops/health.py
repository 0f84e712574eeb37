"""/healthz: the process is up. /readyz: the process can do its job right now, i.e. the
database, Redis, the Baileys sidecar (only when some tenant uses it) and a live worker for
every queue answer. Every check is bounded to well under a second. Anyone gets the
answer (200 or 503, and `{"status": ...}`); the details, which name each failed dependency
and its error, need the ops token (METRICS_TOKEN) or a caller on this machine."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from project.redis_clients import redis_client
from whatsapp.ops import access, heartbeat

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


def sidecar_required() -> bool:
    from whatsapp.models import Tenant

    return Tenant.objects.filter(baileys_enabled=True).exists()


def check_sidecar() -> str | None:
    response = requests.get(f"{settings.SIDECAR_URL}/healthz", timeout=(PROBE_TIMEOUT, PROBE_TIMEOUT))
    if response.status_code != 200:
        return f"GET /healthz answered {response.status_code}"
    return None


def required_queues(baileys: bool) -> list[str]:
    """Every queue Celery is configured with; the lifecycle queue only when some tenant
    has a WhatsApp Web session to look after."""
    from project.celery import app

    names = [q.name for q in app.conf.task_queues or []] or [app.conf.task_default_queue]
    return sorted(n for n in names if baileys or not n.startswith("baileys"))


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
    baileys = False
    if checks["database"]["ok"]:
        try:
            baileys = sidecar_required()
        except Exception:  # noqa: BLE001 - the database check above already tells
            baileys = False
    checks["redis"] = _run(check_redis)
    if baileys:
        checks["sidecar"] = _run(check_sidecar)
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
