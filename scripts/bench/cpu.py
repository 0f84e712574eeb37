"""Where the CPU goes during a benchmark: CPU seconds of every process on the machine,
read before and after a load and summed by role (gunicorn, a Celery worker, PostgreSQL's
backends, Redis, the fake Twilio API), printed per request or per message.

On a 2-core machine every part of the system and the load generator share the CPU, so a
ratio such as webhook/trivial is a ratio of whole-system CPU per request; this is what
showed PostgreSQL planning the webhook's statement anew each time (issue 16,
docs/PERFORMANCE.md). `run.py --cpu` prints it."""

from __future__ import annotations

import psutil

# A process belongs to the first role whose marker is in its command line.
ROLES = [
    ("gunicorn", "gunicorn"),
    ("celery ai worker", "-n ai@"),
    ("celery send worker", "-n send@"),
    ("fake Twilio", "twilio_server"),
    ("redis", "redis-server"),
    ("postgresql", "postgres"),
]


def snapshot() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every process, by pid, with its role."""
    seen = {}
    for proc in psutil.process_iter(["cmdline", "name"]):
        try:
            times = proc.cpu_times()
            command = " ".join(proc.info["cmdline"] or [proc.info["name"] or ""])
        except psutil.Error:
            continue
        seen[proc.pid] = (role_of(command), times.user + times.system)
    return seen


def role_of(command: str) -> str:
    return next((role for role, marker in ROLES if marker in command), "other")


def seconds_by_role(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by role; a process that started in
    between counts whole. The benchmark itself and the machine's other services are left
    out ("other")."""
    totals: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        totals[role] = totals.get(role, 0.0) + seconds - (before[pid][1] if pid in before else 0.0)
    totals.pop("other", None)
    return totals


def add(into: dict[str, float], more: dict[str, float]) -> dict[str, float]:
    for role, seconds in more.items():
        into[role] = into.get(role, 0.0) + seconds
    return into


def line(seconds: dict[str, float], units: int, unit: str) -> str:
    """"CPU per request: 6.10 ms (gunicorn 4.20, postgresql 0.90, ...)"."""
    per = {role: s * 1000 / max(units, 1) for role, s in sorted(seconds.items(), key=lambda kv: -kv[1])}
    return f"CPU per {unit}: {sum(per.values()):.2f} ms (" + ", ".join(f"{r} {ms:.2f}" for r, ms in per.items()) + ")"
