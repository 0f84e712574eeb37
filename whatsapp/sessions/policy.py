"""The reconnect policy of a WhatsApp Web session: given what the sidecar reports and what
we recorded before, what to do now. Pure (no I/O, the clock is an argument) so that every
rule is a unit test.

Rules (DESIGN.md, "Baileys lifecycle"; codes are Baileys' DisconnectReason):
- 401 logged out: never reconnect by ourselves; staff must start it again and scan a QR.
- 440 replaced (the number was opened in another WhatsApp Web): stop and alert.
- Reconnect by ourselves only after a close that is transient by nature: 515 restart
  required (at once the first time), 408 connection lost or timed out, 428 connection
  closed, 503 service unavailable, and a session that is simply gone without a code (the
  sidecar restarted). Back off 5 s x 1.5^n, capped at 60 s, for at most `budget`
  reconnects without a stable connection. The counter resets only after 30 s of stable
  connection, so a session that flaps open-close backs off and then gives up instead of
  reconnecting about once a minute forever.
- Everything else will not heal by retrying: 403 (banned), 405 (outdated WhatsApp Web
  version), 411 (multi-device mismatch), 500 (bad session), an unknown code, a session
  that closed before a phone was ever linked (the QR code was not scanned in time) and an
  exhausted budget stop the session, with a stop reason and an alert for staff. Only a
  person starts it again. Credentials are never deleted by the policy (it has no
  "logout" action at all: only staff log a session out).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

BACKOFF_BASE = 5.0
BACKOFF_FACTOR = 1.5
BACKOFF_MAX = 60.0
STABLE_AFTER = timedelta(seconds=30)
DEFAULT_BUDGET = 10  # settings.SESSION_RECONNECT_BUDGET

LOGGED_OUT = 401
REPLACED = 440
RESTART_REQUIRED = 515
# Closes that the same credentials survive: reconnect with backoff. None: no code at all
# (the sidecar restarted and forgot the socket, or a start timed out inside it).
TRANSIENT = frozenset({408, 428, 503, RESTART_REQUIRED, None})

# Why the policy stopped a session (SessionState.stop_reason), for staff to read.
STOP_REASONS = {
    "banned": "403 forbidden: WhatsApp refused this number (banned or blocked)",
    "outdated_version": "405: WhatsApp rejected the WhatsApp Web version",
    "multidevice_mismatch": "411: multi-device mismatch",
    "bad_session": "500 bad session: WhatsApp does not accept the stored credentials",
    "qr_not_scanned": "the QR code was not scanned in time",
    "unknown_code": "closed with a code that is not known to heal",
    "budget_exhausted": "too many reconnects without a stable connection",
}
_CODE_REASONS = {403: "banned", 405: "outdated_version", 411: "multidevice_mismatch", 500: "bad_session"}
_WHAT_TO_DO = {
    "banned": "Check the number in the WhatsApp app on the phone, then press Start.",
    "outdated_version": "Update SIDECAR_WA_VERSION (or the sidecar's baileys), then press Start.",
    "multidevice_mismatch": "Press Logout, then Start, and scan the new QR code.",
    "bad_session": "Press Start; if it happens again, press Logout, then Start, and scan again.",
    "qr_not_scanned": "Press Start and scan the new QR code.",
    "unknown_code": "Check the sidecar log, then press Start.",
    "budget_exhausted": "Check the network and the sidecar log, then press Start.",
}

# Actions
NOTHING = "nothing"
START = "start"
STOP = "stop"
WAIT = "wait"  # down, reconnect scheduled at next_reconnect_at


@dataclass(frozen=True)
class Observed:
    """GET /sessions/{tenant}/status, as far as the policy cares."""

    connected: bool = False
    can_send: bool = False
    starting: bool = False
    stopping: bool = False
    qr: str = ""
    disconnect_code: int | None = None
    disconnect_reason: str = ""
    connected_since: datetime | None = None
    auth_paired: bool = False  # credentials of a linked phone exist

    @property
    def live(self) -> bool:
        """A socket exists: connected, connecting, or showing a QR."""
        return self.connected or self.starting or self.stopping or bool(self.qr)


@dataclass(frozen=True)
class Recorded:
    """What SessionState holds from earlier checks."""

    desired: str = "stopped"  # "running" or "stopped"
    reconnect_attempts: int = 0
    next_reconnect_at: datetime | None = None
    stop_reason: str = ""  # set when the policy stopped the session; a Start clears it


@dataclass(frozen=True)
class Decision:
    action: str
    status: str
    reconnect_attempts: int
    next_reconnect_at: datetime | None = None
    alert: str | None = None  # None: leave the alert as it is; "": clear it
    desired: str | None = None  # None: unchanged
    stop_reason: str | None = None  # a key of STOP_REASONS when the policy stops the session


def backoff_delay(attempts: int) -> float:
    """Seconds before reconnect attempt number `attempts` (0-based): 5, 7.5, 11.25, ... 60."""
    return min(BACKOFF_MAX, BACKOFF_BASE * BACKOFF_FACTOR**attempts)


def decide(observed: Observed, recorded: Recorded, now: datetime, budget: int = DEFAULT_BUDGET) -> Decision:
    attempts = recorded.reconnect_attempts
    if recorded.desired != "running":
        if observed.live and not observed.stopping:
            return Decision(STOP, "stopping", attempts)
        return Decision(NOTHING, "halted" if recorded.stop_reason else "stopped", attempts)

    if observed.connected:
        stable = observed.connected_since is not None and now - observed.connected_since >= STABLE_AFTER
        status = "connected" if observed.can_send else "connected_not_ready"
        return Decision(NOTHING, status, 0 if stable else attempts, None, alert="" if stable else None)
    if observed.qr:
        return Decision(NOTHING, "waiting_for_qr", attempts)
    if observed.live:
        return Decision(NOTHING, "starting", attempts)

    code = observed.disconnect_code
    if code == LOGGED_OUT:
        return Decision(
            NOTHING, "logged_out", attempts,
            alert="Logged out from the phone: press Start and scan the new QR code.",
        )
    if code == REPLACED:
        return Decision(
            STOP, "replaced", attempts, alert=(
                "Replaced: this number was opened in another WhatsApp Web session. Stopped; "
                "close the other session, then press Start."
            ),
            desired="stopped",
        )
    if not observed.auth_paired:
        # Nobody linked a phone: a new socket would only show another QR code nobody scans.
        return _halt("qr_not_scanned", observed, attempts)
    if code not in TRANSIENT:
        return _halt(_CODE_REASONS.get(code, "unknown_code"), observed, attempts)
    if attempts >= budget:
        return _halt("budget_exhausted", observed, attempts)
    if code == RESTART_REQUIRED and attempts == 0:
        return Decision(START, "reconnecting", attempts + 1)

    if recorded.next_reconnect_at is None:
        due = now + timedelta(seconds=backoff_delay(attempts))
        return Decision(WAIT, "backoff", attempts, due)
    if now >= recorded.next_reconnect_at:
        return Decision(START, "reconnecting", attempts + 1)
    return Decision(WAIT, "backoff", attempts, recorded.next_reconnect_at)


def _halt(reason: str, observed: Observed, attempts: int) -> Decision:
    """Stop for good until a person starts the session again, and say why."""
    last = f"{observed.disconnect_code or ''} {observed.disconnect_reason}".strip() or "no code"
    why = STOP_REASONS[reason]
    if reason == "budget_exhausted":
        why = f"gave up after {attempts} reconnects without a stable connection"
    alert = f"Stopped: {why} (last close: {last}). {_WHAT_TO_DO[reason]}"
    return Decision(STOP, "halted", attempts, alert=alert[:200], desired="stopped", stop_reason=reason)
