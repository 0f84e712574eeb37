"""The lifecycle worker of a shard owns that shard's sidecar process.

The Celery worker that consumes a shard's lifecycle queue (`baileys` for the default
shard, `baileys.<shard>` for the others; Procfile: worker_baileys, -c 1) is the only
process that starts, stops, restarts or logs out the shard's WhatsApp sessions. At
worker_init (main process, before the pool forks and BEFORE the worker consumes its
queue) it:
1. takes the shard's lease (its whatsapp_shard row, whatsapp.sessions.shard_lease);
   while another worker holds it (or the database does not answer) it waits there,
   logging why, as a standby: it consumes nothing, so a standby never runs a lifecycle
   command. It takes over when that lease expires (with a new fencing token), so there
   is never a second sidecar with a second socket per number, and a successor started
   after a SIGKILL does not exit in a loop that a process manager may give up on;
2. starts `node whatsapp/sidecar/src/server.js` for the shard (SIDECAR_SHARD,
   SIDECAR_FENCING_TOKEN, the state store) at SIDECAR_URL, which the lease row
   advertises to every other process, and restarts it whenever it dies;
3. schedules its shard's periodic work on its own queue: the health check (which starts
   the sessions that should run, SESSION_START_PARALLELISM at a time, SESSION_START_STAGGER_SECONDS
   apart) at once and every SESSION_HEALTH_INTERVAL_SECONDS, and the collection of
   refused inbound webhooks;
and at worker_shutdown it stops the sidecar (SIGTERM: in-flight sends finish) and
releases the lease. A worker that cannot renew its lease stops the sidecar, and with it
every session, before the lease can expire, then shuts down.
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
from dataclasses import dataclass
from urllib.parse import urlsplit

from celery import signals
from django.conf import settings

from whatsapp import pipeline
from whatsapp.sessions.shard_lease import ShardLease
from whatsapp.sessions.shards import lifecycle_queue, shard_of_queue
from whatsapp.sessions.sidecar_client import SidecarClient

log = logging.getLogger("whatsapp.lifecycle")

WAIT_LOG_EVERY_SECONDS = 30.0
SIDECAR_DIR = settings.BASE_DIR / "whatsapp" / "sidecar"
HEALTH_CHECK_TASK = "whatsapp.lifecycle.health_check"
COLLECT_REJECTED_TASK = "whatsapp.tasks.collect_rejected_inbound"


@dataclass(frozen=True)
class Ownership:
    """What this worker holds: the lifecycle tasks it runs use exactly this sidecar and
    token (copied into the pool's child at fork)."""

    shard: str
    fencing_token: int
    sidecar_url: str

    def client(self) -> SidecarClient:
        return SidecarClient(self.sidecar_url, fencing_token=self.fencing_token, shard=self.shard)


def state_store_env() -> dict[str, str]:
    if settings.SIDECAR_STATE_STORE != "postgres":
        return {}
    url = settings.SIDECAR_STATE_DATABASE_URL or os.environ.get("DATABASE_URL", "")
    return {"SIDECAR_STATE_STORE": "postgres", "SIDECAR_STATE_DATABASE_URL": url}


def sidecar_env(shard: str | None = None, fencing_token: int = 0) -> dict[str, str]:
    """The sidecar's configuration, derived from Django's settings (one source of truth)."""
    url = urlsplit(settings.SIDECAR_URL)
    shard_env = {"SIDECAR_SHARD": shard, "SIDECAR_FENCING_TOKEN": str(fencing_token)} if shard else {}
    return {
        **os.environ,
        "SIDECAR_TOKEN": settings.SIDECAR_TOKEN,
        "SIDECAR_HOST": url.hostname or "127.0.0.1",
        "SIDECAR_PORT": str(url.port or 80),
        "SIDECAR_TRANSPORT": settings.SIDECAR_TRANSPORT,
        "SIDECAR_DATA_DIR": str(settings.SIDECAR_DATA_DIR),
        "SIDECAR_WEBHOOK_BASE": settings.SIDECAR_WEBHOOK_BASE,
        "SIDECAR_WEBHOOK_SECRET": settings.SIDECAR_WEBHOOK_SECRET,
        **shard_env,
        **state_store_env(),
    }


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the worker dies, even by SIGKILL, so an
    orphaned sidecar never keeps the port (and the WhatsApp sockets) of the next one."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class SidecarProcess:
    """Runs the sidecar and restarts it when it exits, with a growing pause between
    restarts (1 s doubling to 30 s; back to 1 s after a minute of running)."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: str, client: SidecarClient | None = None) -> None:
        self.command, self.env, self.cwd = command, env, cwd
        self.client = client or SidecarClient()
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wait_healthy: float = 15.0) -> None:
        # Spawned from this long-lived thread: PR_SET_PDEATHSIG fires when the spawning
        # thread ends, and this thread lives as long as the worker.
        self._thread = threading.Thread(target=self._supervise, name="sidecar-supervisor", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + wait_healthy
        while time.monotonic() < deadline:
            if self.client.healthy():
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


def ownership() -> Ownership | None:
    """The shard this process owns (in a lifecycle worker holding its lease), else None."""
    return _running.get("ownership")


def worker_shard(worker) -> str | None:
    """The shard whose lifecycle queue this worker consumes (None: not a lifecycle worker)."""
    queues = worker.app.amqp.queues
    consumed = queues.consume_from if queues.consume_from else queues
    shards = {shard_of_queue(name) for name in consumed} - {None}
    if len(shards) > 1:
        raise RuntimeError(f"one lifecycle worker per shard: this one would consume {sorted(shards)}")
    return shards.pop() if shards else None


def is_lifecycle_worker(worker) -> bool:
    return worker_shard(worker) is not None


def _say(level: int, message: str) -> None:
    """Log, and print to stderr: at worker_init the worker's logging may not be set up."""
    log.log(level, message)
    print(f"{logging.getLevelName(level)}: {message}", file=sys.stderr, flush=True)


def _wait_for_lease(lease: ShardLease) -> None:
    last_said: list[float] = []
    queue = lifecycle_queue(lease.shard)

    def waiting(holder: str | None, left: float | None, error: Exception | None) -> None:
        if last_said and time.monotonic() - last_said[0] < WAIT_LOG_EVERY_SECONDS:
            return
        last_said[:] = [time.monotonic()]
        if error is not None:
            why = f"the database does not answer ({error})"
        else:
            expiry = f"expires in {left:.0f} s unless renewed" if left is not None else "just released"
            why = f"another lifecycle worker holds it ({holder}; {expiry})"
        _say(logging.WARNING, (
            f"waiting for the lifecycle lease of shard {lease.shard!r} as a standby: {why}. Exactly one worker "
            f"may consume the {queue!r} queue, because it owns the shard's sidecar and its WhatsApp sessions; "
            "this one takes over when the lease is free."
        ))

    lease.acquire_when_free(waiting)


class Ticker:
    """Puts the shard's periodic lifecycle work on the owner's own queue: only an owner
    looks after its shard, and a new owner starts the shard's sessions at once."""

    def __init__(self, shard: str) -> None:
        self.shard = shard
        self.queue = lifecycle_queue(shard)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ticker:{shard}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        health_every = settings.SESSION_HEALTH_INTERVAL_SECONDS
        collect_every = settings.REJECTED_INBOUND_INTERVAL_SECONDS
        next_health = next_collect = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_health:
                    next_health = now + health_every
                    # A busy owner (a start can take a minute) must not find a pile of stale checks.
                    pipeline.publish_to(HEALTH_CHECK_TASK, (self.shard,), self.queue, expires=health_every)
                if now >= next_collect:
                    next_collect = now + collect_every
                    pipeline.publish_to(COLLECT_REJECTED_TASK, (self.shard,), self.queue, expires=collect_every)
            except Exception as exc:  # noqa: BLE001 - the broker is down: the next tick tries again
                log.warning("could not schedule the shard's periodic work: %s", exc)
            self._stop.wait(max(0.05, min(next_health, next_collect) - time.monotonic()))


@signals.worker_init.connect
def take_lease_and_start_sidecar(sender=None, **_kwargs) -> None:
    if sender is None:
        return
    shard = worker_shard(sender)
    if shard is None:
        return
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    ttl = settings.LIFECYCLE_LEASE_TTL_SECONDS
    lease = ShardLease(shard, owner, ttl, settings.SIDECAR_URL)
    _wait_for_lease(lease)

    def lost(holder: str | None) -> None:
        if holder is None:
            log.critical("lifecycle lease could not be renewed (database unreachable): stopping the sidecar and "
                         "its sessions before the lease can expire, then this worker")
        else:
            log.critical("lifecycle lease lost to %s; stopping the sidecar and this worker", holder)
        ticker = _running.get("ticker")
        if ticker is not None:
            ticker.stop()
        process = _running.get("sidecar")
        if process is not None:
            # SIGTERM lets in-flight sends finish, but only while the lease is surely
            # still ours; then SIGKILL, which closes every WhatsApp socket at once.
            margin = min(2.0, ttl / 10)
            process.stop(timeout=max(0.1, lease.expires_at - time.monotonic() - margin))
        os.kill(os.getpid(), signal.SIGTERM)

    lease.keep_renewed(lost)
    _running["lease"] = lease
    own = Ownership(shard, lease.fencing_token, settings.SIDECAR_URL)
    _running["ownership"] = own
    log.info("lifecycle lease taken (shard %s, fencing token %s, %s)", shard, own.fencing_token, owner,
             extra={"shard": shard, "fencing_token": own.fencing_token})

    node_modules = SIDECAR_DIR / "node_modules"
    if not node_modules.exists():
        log.error("%s is missing: run `make sidecar-deps` (npm ci)", node_modules)
    process = SidecarProcess(
        [settings.SIDECAR_NODE, str(SIDECAR_DIR / "src" / "server.js")], sidecar_env(shard, own.fencing_token),
        str(SIDECAR_DIR), own.client(),
    )
    _running["sidecar"] = process
    process.start()
    # The ticker publishes at once; it starts when the worker is ready, after the prefork
    # pool has forked: a child forked while a thread of ours held the broker connection
    # pool's lock would hang on its first task event, and the shard's lifecycle queue
    # (concurrency 1) with it.
    _running["ticker"] = Ticker(shard)


@signals.worker_ready.connect
def start_ticker(**_kwargs) -> None:
    ticker = _running.get("ticker")
    if ticker is not None:
        ticker.start()


@signals.worker_shutdown.connect
def stop_sidecar_and_release_lease(**_kwargs) -> None:
    ticker = _running.pop("ticker", None)
    if ticker is not None:
        ticker.stop()
    process = _running.pop("sidecar", None)
    if process is not None:
        process.stop()
    _running.pop("ownership", None)
    lease = _running.pop("lease", None)
    if lease is not None:
        lease.release()
        log.info("lifecycle lease released")
