"""A check of `make run` by hand (too slow for the test suite: about a minute): start it on
free ports in a throwaway directory, wait for its READY line, press Ctrl-C (SIGINT to its
process group, as a terminal does), and report what a user would see:

    .venv/bin/python -m scripts.check_run [--redis-url redis://127.0.0.1:6379/13]

It fails (exit 1) when the READY line does not come, when stopping prints a traceback, or
when any process of the run is still alive afterwards (found by the run's own RUN_DIR in
each process's environment)."""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until(fd: int, proc: subprocess.Popen, done, timeout: float) -> str:
    """Read the pty until done(text) or the process exits or the timeout passes."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if done(ANSI.sub("", out.decode(errors="replace"))):
                break
        elif proc.poll() is not None:
            break
    return ANSI.sub("", out.decode(errors="replace")).replace("\r\n", "\n")


def processes_of_run(run_dir: str) -> list[str]:
    """Live processes whose environment names this run's RUN_DIR."""
    marker = f"RUN_DIR={run_dir}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
            if marker in env.split(b"\0"):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{pid} {cmd.strip()[:120]}")
        except OSError:
            continue
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default="", help="else make run picks one (its usual rules)")
    parser.add_argument("--command", default="make run")
    parser.add_argument("--busy", action="store_true", help="press Ctrl-C while a reply is being sent")
    args = parser.parse_args()

    run_dir = tempfile.mkdtemp(prefix="check-run-")
    web = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "RUN_DIR": run_dir,
        "DATABASE_URL": f"sqlite:///{run_dir}/db.sqlite3",
        "WEB_BIND": web,
        "FLOWER_PORT": str(free_port()),
        "FAKE_TWILIO_PORT": str(free_port()),
        "SIDECAR_URL": f"http://127.0.0.1:{free_port()}",
        "SIDECAR_DATA_DIR": f"{run_dir}/sidecar",
        "BUNDLED_REDIS_PORT": str(free_port()),
    }
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    for name in ("TWILIO_AUTH_TOKEN", "TWILIO_API_BASE_URL", "SIDECAR_WEBHOOK_BASE", "FLOWER_BASIC_AUTH"):
        env.pop(name, None)

    primary, secondary = pty.openpty()
    started = time.monotonic()
    proc = subprocess.Popen(args.command, shell=True, cwd=ROOT, env=env, stdin=secondary, stdout=secondary,
                            stderr=secondary, start_new_session=True)
    os.close(secondary)
    before = read_until(primary, proc, lambda text: "READY in" in text, 240)
    ready_after = time.monotonic() - started
    ready = [line for line in before.splitlines() if "READY in" in line]
    print(f"$ {args.command}   (RUN_DIR={run_dir}, web {web})")
    noise = before.split("READY in")[0].rstrip().splitlines()
    print(f"--- output before the READY line: {len(noise)} lines; the last 3 ---")
    print("\n".join(noise[-3:]))
    print(f"--- READY line (after {ready_after:.1f} s) ---")
    print(ready[0] if ready else "(none)")

    if args.busy and ready:
        # Ctrl-C while a reply is on its way: the fake Twilio answers slowly, and a customer
        # message is in the pipeline (1.5 s debounce, then a send that takes 4 s).
        requests.post(f"http://127.0.0.1:{env['FAKE_TWILIO_PORT']}/_fake/faults", json={"delay_seconds": 4}, timeout=5)
        subprocess.run([sys.executable, "manage.py", "send_test_webhook", "demo", "--server", f"http://{web}",
                        "--wait", "0", "--body", "hours?"], cwd=ROOT, env=env, check=True, capture_output=True)
        time.sleep(2.5)
        print("--- a reply is being sent (fake Twilio takes 4 s) when Ctrl-C comes ---")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    stopped = time.monotonic()
    after = read_until(primary, proc, lambda text: False, 60)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        code = None
    print(f"--- output after Ctrl-C ({time.monotonic() - stopped:.1f} s to exit, exit code {code}) ---")
    print(after.strip())
    time.sleep(1)
    left = processes_of_run(run_dir)
    print("--- processes of this run still alive ---")
    print("\n".join(left) if left else "none")

    failures = []
    if not ready:
        failures.append("no READY line")
    if "Traceback" in after:
        failures.append("a traceback while stopping")
    if left:
        failures.append(f"{len(left)} processes left behind")
        for line in left:
            os.kill(int(line.split()[0]), signal.SIGKILL)
    print("--- verdict ---")
    print("OK" if not failures else "FAILED: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
