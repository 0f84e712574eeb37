"""Used by scripts/run.sh on Ctrl-C: stop what honcho runs so that work in flight ends
cleanly, with no tracebacks.

honcho stops a Procfile by sending SIGTERM to each process's whole process group, and as
soon as one process has exited it does that to all the others. A Celery worker's pool
children are in its group: SIGTERM kills a child in the middle of a task (a
WorkerLostError traceback, and a reply that may have been sent is left to the
reconciler). Celery's own way is SIGTERM to the worker's main process only: a warm
shutdown that lets running tasks finish. So, while honcho is paused (run.sh sends it
SIGSTOP), this sends SIGTERM to each main process alone: the workers and beat first (a
reply being sent still reaches the fake Twilio API and the sidecar), then web, Flower and
the rest. run.sh then lets honcho go on; it finds everything stopped and exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

WORKERS_WAIT = 30.0  # a send is bounded by TWILIO_READ_TIMEOUT / the sidecar's send timeout
OTHERS_WAIT = 10.0


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state


def children(pid: int) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and parent_of(int(p)) == pid]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def procfile_processes(honcho_pid: int) -> list[int]:
    """honcho -> one helper per Procfile line -> `sh -c <line>` -> the command's main process."""
    mains = []
    for helper in children(honcho_pid):
        for shell in children(helper):
            mains.extend(children(shell) or [shell])  # a shell that exec'd is the command itself
    return mains


def alive(pid: int) -> bool:
    """Running (a zombie is gone for our purpose: its parent, the shell, reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop(pids: list[int], wait: float) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--honcho-pid", type=int, required=True)
    args = parser.parse_args(argv)
    mains = procfile_processes(args.honcho_pid)
    stop([p for p in mains if is_worker_or_beat(cmdline(p))], WORKERS_WAIT)
    stop([p for p in mains if alive(p)], OTHERS_WAIT)


def is_worker_or_beat(command: str) -> bool:
    words = command.split()
    return any(w.endswith("celery") for w in words) and ("worker" in words or "beat" in words)


if __name__ == "__main__":
    main()
