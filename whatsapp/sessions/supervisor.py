"""The lifecycle worker owns the sidecar process.

The Celery worker that consumes the `baileys` queue (Procfile: worker_baileys, -c 1) is
the only process that starts, stops, restarts or logs out WhatsApp sessions. At
worker_init (main process, before the pool forks) it:
1. takes a Redis lease; while another lifecycle worker holds it (or Redis does not
   answer) it waits, logging why, and takes over when that lease expires, so there is
   never a second sidecar with a second socket per number, and a successor started
   after a SIGKILL does not exit in a loop that a process manager may give up on;
2. starts `node whatsapp/sidecar/src/server.js` and restarts it whenever it dies;
and at worker_shutdown it stops the sidecar (SIGTERM: in-flight sends finish) and
releases the lease. A worker that cannot renew its lease (Redis unreachable) stops the
sidecar, and with it every session, before the lease can expire, then shuts down.
Other workers are untouched by all this.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

import redis
from celery import signals
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from project.redis_clients import redis_client
from whatsapp.sessions.lease import Lease, lease_redis_timeout
from whatsapp.sessions.sidecar_client import SidecarClient

log = logging.getLogger("whatsapp.lifecycle")

LIFECYCLE_QUEUE = "baileys"
LEASE_KEY = f"lifecycle-lease:{LIFECYCLE_QUEUE}"
WAIT_LOG_EVERY_SECONDS = 30.0
SIDECAR_DIR = settings.BASE_DIR / "whatsapp" / "sidecar"


def sidecar_env() -> dict[str, str]:
    """The sidecar's configuration, derived from Django's settings (one source of truth)."""
    url = urlsplit(settings.SIDECAR_URL)
    return {
        **os.environ,
        "SIDECAR_TOKEN": settings.SIDECAR_TOKEN,
        "SIDECAR_HOST": url.hostname or "127.0.0.1",
        "SIDECAR_PORT": str(url.port or 80),
        "SIDECAR_TRANSPORT": settings.SIDECAR_TRANSPORT,
        "SIDECAR_DATA_DIR": str(settings.SIDECAR_DATA_DIR),
        "SIDECAR_WEBHOOK_BASE": settings.SIDECAR_WEBHOOK_BASE,
        "SIDECAR_WEBHOOK_SECRET": settings.SIDECAR_WEBHOOK_SECRET,
    }


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the worker dies, even by SIGKILL, so an
    orphaned sidecar never keeps the port (and the WhatsApp sockets) of the next one."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class SidecarProcess:
    """Runs the sidecar and restarts it when it exits, with a growing pause between
    restarts (1 s doubling to 30 s; back to 1 s after a minute of running)."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: str) -> None:
        self.command, self.env, self.cwd = command, env, cwd
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wait_healthy: float = 15.0) -> None:
        # Spawned from this long-lived thread: PR_SET_PDEATHSIG fires when the spawning
        # thread ends, and this thread lives as long as the worker.
        self._thread = threading.Thread(target=self._supervise, name="sidecar-supervisor", daemon=True)
        self._thread.start()
        client = SidecarClient()
        deadline = time.monotonic() + wait_healthy
        while time.monotonic() < deadline:
            if client.healthy():
                return
            time.sleep(0.1)
        log.error("the sidecar is not answering %s yet; still trying", settings.SIDECAR_URL)

    def _spawn(self) -> None:
        # Its own session: a Ctrl-C meant for the worker's terminal must not stop the sidecar
        # behind the worker's back (the worker stops it at shutdown, after its tasks).
        self.proc = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, preexec_fn=_die_with_parent, start_new_session=True
        )
        log.info("sidecar started (pid %s)", self.proc.pid, extra={"pid": self.proc.pid})

    def _supervise(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._spawn()
            except OSError as exc:
                log.error("could not start the sidecar (%s): %s", self.command[0], exc)
            else:
                while self.proc.poll() is None and not self._stop.wait(0.2):
                    pass
                if self._stop.is_set():
                    return
                log.error(
                    "sidecar exited with code %s; restarting in %.0f s", self.proc.returncode, pause,
                    extra={"exit_code": self.proc.returncode},
                )
                self.restarts += 1
            if time.monotonic() - started > 60:
                pause = 1.0
            if self._stop.wait(pause):
                return
            pause = min(30.0, pause * 2)

    def stop(self, timeout: float = 25.0) -> None:
        self._stop.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # the sidecar waits for in-flight sends, then exits 0
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("sidecar did not stop within %.0f s; killing it", timeout)
                proc.kill()
                proc.wait(5)
        if self._thread is not None:
            self._thread.join(5)
        log.info("sidecar stopped")


_running: dict[str, object] = {}


def is_lifecycle_worker(worker) -> bool:
    queues = worker.app.amqp.queues
    consumed = queues.consume_from if queues.consume_from else queues
    return LIFECYCLE_QUEUE in consumed


def lease_redis(ttl_seconds: float) -> redis.Redis:
    # No retries inside redis-py: the lease times its own tries (whatsapp.sessions.lease).
    timeout = lease_redis_timeout(ttl_seconds)
    return redis_client(timeout, retry=Retry(NoBackoff(), 0))


def _say(level: int, message: str) -> None:
    """Log, and print to stderr: at worker_init the worker's logging may not be set up."""
    log.log(level, message)
    print(f"{logging.getLevelName(level)}: {message}", file=sys.stderr, flush=True)


def _wait_for_lease(lease: Lease) -> None:
    last_said: list[float] = []

    def waiting(holder: str | None, left: float | None, error: Exception | None) -> None:
        if last_said and time.monotonic() - last_said[0] < WAIT_LOG_EVERY_SECONDS:
            return
        last_said[:] = [time.monotonic()]
        if error is not None:
            why = f"Redis does not answer ({error})"
        else:
            expiry = f"expires in {left:.0f} s unless renewed" if left is not None else "just released"
            why = f"another lifecycle worker holds it ({holder}; {expiry})"
        _say(logging.WARNING, (
            f"waiting for the lifecycle lease {LEASE_KEY!r}: {why}. Exactly one worker may consume the "
            f"{LIFECYCLE_QUEUE!r} queue, because it owns the sidecar and its WhatsApp sessions; this one takes "
            "over when the lease is free."
        ))

    lease.acquire_when_free(waiting)


@signals.worker_init.connect
def take_lease_and_start_sidecar(sender=None, **_kwargs) -> None:
    if sender is None or not is_lifecycle_worker(sender):
        return
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    ttl = settings.LIFECYCLE_LEASE_TTL_SECONDS
    lease = Lease(lease_redis(ttl), LEASE_KEY, owner, ttl)
    _wait_for_lease(lease)

    def lost(holder: str | None) -> None:
        if holder is None:
            log.critical("lifecycle lease could not be renewed (Redis unreachable): stopping the sidecar and "
                         "its sessions before the lease can expire, then this worker")
        else:
            log.critical("lifecycle lease lost to %s; stopping the sidecar and this worker", holder)
        process = _running.get("sidecar")
        if process is not None:
            # SIGTERM lets in-flight sends finish, but only while the lease is surely
            # still ours; then SIGKILL, which closes every WhatsApp socket at once.
            margin = min(2.0, ttl / 10)
            process.stop(timeout=max(0.1, lease.expires_at - time.monotonic() - margin))
        os.kill(os.getpid(), signal.SIGTERM)

    lease.keep_renewed(lost)
    _running["lease"] = lease
    log.info("lifecycle lease taken (%s)", owner)

    node_modules = SIDECAR_DIR / "node_modules"
    if not node_modules.exists():
        log.error("%s is missing: run `make sidecar-deps` (npm ci)", node_modules)
    process = SidecarProcess(
        [settings.SIDECAR_NODE, str(SIDECAR_DIR / "src" / "server.js")], sidecar_env(), str(SIDECAR_DIR)
    )
    _running["sidecar"] = process
    process.start()


@signals.worker_shutdown.connect
def stop_sidecar_and_release_lease(**_kwargs) -> None:
    process = _running.pop("sidecar", None)
    if process is not None:
        process.stop()
    lease = _running.pop("lease", None)
    if lease is not None:
        lease.release()
        log.info("lifecycle lease released")
