"""Lifecycle tasks of WhatsApp Web sessions (each shard's queue: `baileys` for the default
shard, `baileys.<shard>` for the others; one worker per shard, concurrency 1).

A task about a tenant is put on the queue of the tenant's shard
(whatsapp.sessions.shards.enqueue_lifecycle). The owner runs it against its own sidecar
with its own fencing token; a task that reached the wrong shard's queue (enqueued just
before the tenant moved) is passed on to the right one, never run against a session this
owner does not hold.

Only these tasks start, stop, restart, log out or reconnect sessions, so two of them never
race on one socket. Staff press buttons in the admin (which only enqueue these); the beat
task `health_check` records every session's state in SessionState (the admin reads it)
and applies the reconnect policy of whatsapp.sessions.policy: transient closes are
reconnected within a budget; anything else stops the session with a stop reason and an
alert (admin, dashboard, metrics) until a person presses Start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from celery import shared_task
from django.conf import settings
from django.db import connections
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from project.logging import log_context
from whatsapp.models import SessionState, Tenant
from whatsapp.sessions import (
    policy,
    supervisor,  # also connects the worker signals
)
from whatsapp.sessions.moves import switch_shard
from whatsapp.sessions.shards import default_shard, enqueue_lifecycle, shard_name_of
from whatsapp.sessions.sidecar_client import SidecarClient, SidecarUnavailable, sidecar_for

log = logging.getLogger("whatsapp.lifecycle")

RESTART_WAIT_SECONDS = 2
RESTART_MAX_WAITS = 30  # then restart anyway: the sidecar's stop waits for in-flight sends


def _state(tenant_slug: str) -> SessionState:
    tenant = Tenant.objects.get(slug=tenant_slug)
    state, _ = SessionState.objects.get_or_create(tenant=tenant)
    state.tenant = tenant
    return state


def observed_from(raw: dict) -> policy.Observed:
    last = raw.get("lastDisconnect") or {}
    return policy.Observed(
        connected=bool(raw.get("connected")),
        can_send=bool(raw.get("canSend")),
        starting=bool(raw.get("starting")),
        stopping=bool(raw.get("stopping")),
        qr=raw.get("qr") or "",
        disconnect_code=last.get("code"),
        disconnect_reason=last.get("reason") or "",
        connected_since=_when(raw.get("connectedSince")),
        auth_paired=bool(raw.get("authPaired")),
    )


def _when(value):
    return parse_datetime(value) if isinstance(value, str) and value else None


def _record(state: SessionState, raw: dict) -> None:
    """Copy what the sidecar reports into the row (not yet saved)."""
    last = raw.get("lastDisconnect") or {}
    state.connected = bool(raw.get("connected"))
    state.can_send = bool(raw.get("canSend"))
    state.auth_paired = bool(raw.get("authPaired"))
    state.qr = raw.get("qr") or ""
    state.connected_since = _when(raw.get("connectedSince"))
    state.last_disconnect_code = last.get("code")
    state.last_disconnect_reason = (last.get("reason") or "")[:50]
    state.last_disconnect_at = _when(last.get("at"))


def _recorded(state: SessionState) -> policy.Recorded:
    return policy.Recorded(state.desired, state.reconnect_attempts, state.next_reconnect_at, state.stop_reason)


def _decide(state: SessionState, raw: dict, now) -> policy.Decision:
    return policy.decide(observed_from(raw), _recorded(state), now, settings.SESSION_RECONNECT_BUDGET)


def _label(state: SessionState, raw: dict) -> str:
    return _decide(state, raw, timezone.now()).status


def _sidecar_down(state: SessionState, exc: Exception) -> None:
    log.warning("sidecar unavailable: %s", exc)
    state.status = "sidecar_down"
    state.connected = state.can_send = False
    state.save()


def sidecar_of(tenant: Tenant) -> SidecarClient:
    """In the shard's owner: its own sidecar, with its own fencing token. Elsewhere (a
    shell, eager tests): the sidecar the shard's lease row names."""
    own = supervisor.ownership()
    if own is None:
        return sidecar_for(tenant)
    return own.client()


def passed_on(task_name: str, tenant_slug: str, *args) -> bool:
    """True when the tenant's session belongs to another shard than this owner's: the task
    went to the other shard's queue instead of running here."""
    own = supervisor.ownership()
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if own is None or tenant is None or shard_name_of(tenant) == own.shard:
        return False
    log.info("the session belongs to shard %s, not %s: task passed on", shard_name_of(tenant), own.shard)
    enqueue_lifecycle(task_name, tenant, *args)
    return True


def _ask_sidecar(state: SessionState, call: str) -> dict | None:
    """The sidecar's answer to one call about this session, or None after recording that
    the sidecar is down."""
    try:
        return getattr(sidecar_of(state.tenant), call)(state.tenant.slug)
    except SidecarUnavailable as exc:
        _sidecar_down(state, exc)
        return None


@shared_task(name="whatsapp.lifecycle.start", acks_late=True)
def start(tenant_slug: str) -> None:
    """Staff want the session running: start it (a QR appears if it is not paired)."""
    with log_context(tenant=tenant_slug):
        if passed_on(start.name, tenant_slug):
            return
        state = _state(tenant_slug)
        _wanted_running(state)
        state.status = "starting"
        state.save()
        log.info("session start requested")
        _start(state)


def _wanted_running(state: SessionState) -> None:
    """A person asked for the session: a fresh reconnect budget, and any stop the policy
    made (and its alert) is cleared."""
    state.desired = "running"
    state.alert = ""
    state.reconnect_attempts = 0
    state.next_reconnect_at = None
    state.stop_reason = ""
    state.stopped_at = None


def _start(state: SessionState) -> None:
    raw = _ask_sidecar(state, "start")
    if raw is None:
        return
    _record(state, raw)
    state.next_reconnect_at = None
    state.status = _label(state, raw)
    state.save()
    log.info("session start ended: %s", state.status)


@shared_task(name="whatsapp.lifecycle.stop", acks_late=True)
def stop(tenant_slug: str) -> None:
    if passed_on(stop.name, tenant_slug):
        return
    _stop_requested(tenant_slug, logout=False)


@shared_task(name="whatsapp.lifecycle.logout", acks_late=True)
def logout(tenant_slug: str) -> None:
    """Unlink the device: the sidecar logs out and deletes the credentials; the next start
    shows a new QR."""
    _stop_requested(tenant_slug, logout=True)


def _stop_requested(tenant_slug: str, logout: bool) -> None:
    """Staff want the session down: no reconnect until someone starts it again."""
    with log_context(tenant=tenant_slug):
        state = _state(tenant_slug)
        state.desired = "stopped"
        state.next_reconnect_at = None
        state.save()
        log.info("session %s requested", "logout" if logout else "stop")
        _stop(state, logout=logout)


def _stop(state: SessionState, logout: bool) -> None:
    raw = _ask_sidecar(state, "logout" if logout else "stop")
    if raw is None:
        return
    _record(state, raw)
    state.status = "logged_out" if logout else "stopped"
    state.save()


@shared_task(name="whatsapp.lifecycle.restart", bind=True, acks_late=True, max_retries=None)
def restart(self, tenant_slug: str) -> None:
    """Stop and start again, but not in the middle of a send: wait while it is sending."""
    with log_context(tenant=tenant_slug):
        if passed_on(restart.name, tenant_slug):
            return
        state = _state(tenant_slug)
        sending = _ask_sidecar(state, "sending_status")
        if sending is None:
            return
        if sending.get("isSending") and self.request.retries < RESTART_MAX_WAITS:
            log.info("restart deferred: %s send(s) in flight", sending.get("activeSends"))
            raise self.retry(countdown=RESTART_WAIT_SECONDS)
        log.info("session restart")
        _wanted_running(state)
        state.save()
        _stop(state, logout=False)
        _start(state)


SCAN_CONNECT_WAIT_SECONDS = 10


@shared_task(name="whatsapp.lifecycle.simulate_scan", acks_late=True)
def simulate_scan(tenant_slug: str) -> None:
    """Demo mode (sandbox transport): the simulated phone scans the QR code, so the pairing
    flow can be seen without a phone. The session pairs, restarts (515) and connects; the
    state is recorded as soon as it has, not at the next health check."""
    with log_context(tenant=tenant_slug):
        if passed_on(simulate_scan.name, tenant_slug):
            return
        state = _state(tenant_slug)
        try:
            client = sidecar_of(state.tenant)
            if not client.sandbox_scan(tenant_slug):
                log.warning("simulated scan: the session shows no QR code")
                return
            deadline = time.monotonic() + SCAN_CONNECT_WAIT_SECONDS
            while not client.status(tenant_slug).get("connected") and time.monotonic() < deadline:
                time.sleep(0.2)
        except SidecarUnavailable as exc:
            _sidecar_down(state, exc)
            return
        log.info("simulated scan done")
        check(state)


def in_shard(shard: str) -> Q:
    """The sessions of this shard's tenants (no shard set: the default shard)."""
    if shard == default_shard():
        return Q(tenant__shard__isnull=True) | Q(tenant__shard_id=shard)
    return Q(tenant__shard_id=shard)


@shared_task(name="whatsapp.lifecycle.health_check", acks_late=True)
def health_check(shard: str | None = None) -> int:
    """Record the state of every session of the shard and apply the reconnect policy. The
    shard's owner schedules it (whatsapp.sessions.supervisor.Ticker), at once after it
    took the lease. The sessions to (re)start are started SESSION_START_PARALLELISM at a
    time, SESSION_START_STAGGER_SECONDS apart: a real WhatsApp start takes seconds, so a
    new owner of 100 sessions would need minutes one by one, and WhatsApp must not see a
    burst of logins from one address either."""
    own = supervisor.ownership()
    shard = shard or (own.shard if own else default_shard())
    if own is not None and own.shard != shard:
        log.warning("health check of shard %s reached the owner of %s: skipped", shard, own.shard)
        return 0
    states = list(SessionState.objects.select_related("tenant").filter(in_shard(shard)))
    to_start: list[SessionState] = []
    for state in states:
        with log_context(tenant=state.tenant.slug):
            check(state, start=to_start.append)
    start_staggered(to_start)
    return len(states)


def start_staggered(states: list[SessionState]) -> None:
    if len(states) <= 1:
        for state in states:
            with log_context(tenant=state.tenant.slug):
                _start(state)
        return
    with ThreadPoolExecutor(max_workers=max(1, settings.SESSION_START_PARALLELISM),
                            thread_name_prefix="session-start") as pool:
        for n, state in enumerate(states):
            if n:
                time.sleep(settings.SESSION_START_STAGGER_SECONDS)
            pool.submit(_start_in_thread, state)


def _start_in_thread(state: SessionState) -> None:
    try:
        with log_context(tenant=state.tenant.slug):
            _start(state)
    except Exception:  # noqa: BLE001 - one session's failure must not hide the others'
        log.exception("session start failed")
    finally:
        connections.close_all()  # this thread's own database connection


@shared_task(name="whatsapp.lifecycle.check_session", acks_late=True)
def check_session(tenant_slug: str) -> None:
    """One session's health check, scheduled for the moment a backoff ends."""
    if passed_on(check_session.name, tenant_slug):
        return
    state = SessionState.objects.select_related("tenant").filter(tenant__slug=tenant_slug).first()
    if state is not None:
        with log_context(tenant=tenant_slug):
            check(state)


def check(state: SessionState, start: Callable[[SessionState], None] | None = None) -> str | None:
    """One health check of one session; the policy's action (None: the sidecar is down).
    A start the policy decides is made at once, or handed to `start` (a batch of starts)."""
    raw = _ask_sidecar(state, "status")
    if raw is None:
        return None
    now = timezone.now()
    decision = _decide(state, raw, now)
    _record(state, raw)
    state.status = decision.status
    state.reconnect_attempts = decision.reconnect_attempts
    state.next_reconnect_at = decision.next_reconnect_at
    if decision.alert is not None and decision.alert != state.alert:
        if decision.alert:
            log.error("session alert: %s", decision.alert)
        state.alert = decision.alert
    if decision.desired is not None:
        state.desired = decision.desired
    if decision.stop_reason:
        state.stop_reason = decision.stop_reason
        state.stopped_at = now
    state.save()

    if decision.action == policy.START:
        log.info(
            "reconnecting (attempt %s) after %s %s", decision.reconnect_attempts,
            state.last_disconnect_code, state.last_disconnect_reason,
        )
        (start or _start)(state)
    elif decision.action == policy.STOP:
        log.warning("stopping the session (%s)", decision.status)
        _stop(state, logout=False)
        if decision.status in {"replaced", "halted"}:
            state.status = decision.status
            state.save(update_fields=["status", "updated_at"])
    elif decision.action == policy.WAIT and decision.next_reconnect_at is not None:
        due_in = (decision.next_reconnect_at - now).total_seconds()
        # Due before the next beat tick: check again exactly then.
        if due_in < settings.SESSION_HEALTH_INTERVAL_SECONDS:
            enqueue_lifecycle(check_session.name, state.tenant, countdown=max(0.0, due_in) + 0.1)
    return decision.action


@shared_task(name="whatsapp.lifecycle.move", acks_late=True)
def move(tenant_slug: str, to_shard: str) -> None:
    """Rebalancing: move the tenant's session to another shard. Runs on the OLD shard's
    queue, so it is ordered with every other lifecycle command of the session there:
    1. the old owner stops the session (waits for sends in flight, keeps the credentials);
    2. Tenant.shard is switched: from then on every send reads the new shard's row and
       goes to the new owner (sends in between found the session not ready and were
       retried later, nothing sent);
    3. if the session was wanted running, `start` is queued on the new shard's queue.
    A redelivered move whose switch is done only makes sure of step 3."""
    with log_context(tenant=tenant_slug):
        tenant = Tenant.objects.get(slug=tenant_slug)
        state = _state(tenant_slug)
        if shard_name_of(tenant) == to_shard:
            if state.desired == "running":
                enqueue_lifecycle(start.name, tenant)
            return
        if passed_on(move.name, tenant_slug, to_shard):
            return
        log.info("moving the session from shard %s to %s", shard_name_of(tenant), to_shard)
        if _ask_sidecar(state, "stop") is None:
            # Our own sidecar is down, and with it the socket: nothing to stop. Only this
            # task (concurrency 1) could start the session here again, and it will not.
            log.warning("the old owner's sidecar did not answer the stop; its session is down with it")
        switch_shard(tenant, to_shard)
        state.status = "moving"
        state.connected = state.can_send = False
        state.save()
        if state.desired == "running":
            tenant.refresh_from_db()
            enqueue_lifecycle(start.name, tenant)
        log.info("session moved to shard %s", to_shard)
