"""Used by scripts/run.sh: wait until every part of `make run` really answers, then print
one line saying so, with the URLs and the logins. Startup logs scroll by first; this line
comes after them, so a newcomer knows when to start trying things.

"Ready" is measured, not guessed:
- web: GET /readyz is 200 (database, Redis, the sidecar when a tenant uses it, and a live
  worker on every queue, from the workers' heartbeats: docs/OPERATIONS.md);
- each worker: its heartbeat in Redis (whatsapp/ops/heartbeat.py), newer than this start;
- beat: it has written its schedule file since this start (celery beat does on start-up);
- Flower: its port answers the login;
- sidecar: GET /healthz is 200.

It stops by itself when the process it watches (honcho) is gone.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import redis
import requests

QUEUES = ("ai", "default", "send", "baileys")  # celeryconfig.task_queues
HEARTBEAT_KEY = "ops:workers:{queue}"  # whatsapp/ops/heartbeat.py
REPORT_EVERY = 30.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--since", type=float, required=True, help="start time (epoch) of this run")
    parser.add_argument("--watch-pid", type=int, required=True, help="stop waiting when this process is gone")
    parser.add_argument("--web", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--flower", required=True, help="e.g. http://127.0.0.1:5555")
    parser.add_argument("--flower-auth", default="", help="user:password")
    parser.add_argument("--sidecar", default="", help="default: Django's SIDECAR_URL (.env included)")
    parser.add_argument("--redis", default="", help="default: Django's REDIS_URL")
    parser.add_argument("--beat-schedule", required=True, help="celery beat's schedule file (-s)")
    parser.add_argument("--admin-password-file", required=True)
    parser.add_argument("--note", default="", help="appended to the line (demo mode...)")
    args = parser.parse_args(argv)
    if not (args.sidecar and args.redis):
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        from django.conf import settings  # what every process of the run reads (.env too)

        args.sidecar = args.sidecar or settings.SIDECAR_URL
        args.redis = args.redis or settings.REDIS_URL
    return args


def http_ok(url: str, auth: tuple[str, str] | None = None) -> str | None:
    """None when `url` answers 200, else what went wrong (short)."""
    try:
        response = requests.get(url, auth=auth, timeout=2)
    except requests.RequestException as exc:
        return type(exc).__name__
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


def live_workers(client: redis.Redis, since: float) -> dict[str, list[str]]:
    """Worker names per queue whose heartbeat is newer than this run's start."""
    try:
        return {
            q: sorted(name.decode() for name in client.zrangebyscore(HEARTBEAT_KEY.format(queue=q), since, "+inf"))
            for q in QUEUES
        }
    except redis.RedisError:
        return {q: [] for q in QUEUES}


def beat_started(schedule: str, since: float) -> bool:
    # The shelve file may carry a suffix (.db, .dat...) depending on the dbm module.
    return any(os.path.getmtime(path) >= since for path in glob.glob(glob.escape(schedule) + "*"))


def problems(args: argparse.Namespace, client: redis.Redis) -> tuple[list[str], dict[str, list[str]]]:
    workers = live_workers(client, args.since)
    flower_auth = tuple(args.flower_auth.split(":", 1)) if ":" in args.flower_auth else None
    checks = {
        "flower": http_ok(f"{args.flower}/", auth=flower_auth),
        "sidecar": http_ok(f"{args.sidecar}/healthz"),
        "beat": None if beat_started(args.beat_schedule, args.since) else "no schedule written yet",
        **{f"worker {q}": None if workers[q] else "no heartbeat yet" for q in QUEUES},
    }
    # /readyz last, once the rest is up: each poll is a line in the web's access log.
    checks["web"] = "waiting for the rest" if any(checks.values()) else http_ok(f"{args.web}/readyz")
    return [f"{name} ({why})" for name, why in checks.items() if why], workers


def admin_login(password_file: str) -> str:
    try:
        with open(password_file) as f:
            return f"user admin, password {f.read().strip()}"
    except OSError:
        return "user admin, password as you set it"


def ready_line(args: argparse.Namespace, workers: dict[str, list[str]], took: float) -> str:
    names = ", ".join(sorted({n for found in workers.values() for n in found}))
    flower_login = f" (login {args.flower_auth.replace(':', ' / ', 1)})" if args.flower_auth else ""
    parts = [
        f"READY in {took:.0f} s",
        f"admin {args.web}/admin/ ({admin_login(args.admin_password_file)})",
        f"dashboard {args.web}/admin/ops/",
        f"Flower {args.flower}/{flower_login}",
        f"workers {names} + beat",
        f"sidecar {args.sidecar}",
    ]
    if args.note:
        parts.append(args.note)
    parts.append("Ctrl-C stops everything")
    return " | ".join(parts)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    client = redis.Redis.from_url(args.redis, socket_timeout=1, socket_connect_timeout=1)
    next_report = time.time() + REPORT_EVERY
    while alive(args.watch_pid):
        missing, workers = problems(args, client)
        now = time.time()
        if not missing:
            bold, plain = ("\033[1;32m", "\033[0m") if sys.stdout.isatty() else ("", "")
            print(f"\n{bold}{ready_line(args, workers, now - args.since)}{plain}\n", flush=True)
            return 0
        if now >= next_report:
            print(f"still starting after {now - args.since:.0f} s; waiting for: {', '.join(missing)}", flush=True)
            next_report = now + REPORT_EVERY
        time.sleep(0.5)
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
