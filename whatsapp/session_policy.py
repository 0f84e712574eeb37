"""The reconnect policy of a WhatsApp Web session: given what the sidecar reports and what
we recorded before, what to do now. Pure (no I/O, the clock is an argument) so that every
rule is a unit test.

Rules (DESIGN.md, "Baileys lifecycle"):
- 401 logged out: never reconnect by ourselves; staff must start it again and scan a QR.
- 440 replaced (the number was opened in another WhatsApp Web): stop and alert.
- 515 restart required: restart at once (the first time; repeated ones back off).
- 500 bad session is an ordinary failure: back off; credentials are never deleted for it
  (the policy has no "logout" action at all: only staff log a session out).
- anything else, and a session that is simply gone (sidecar restarted): back off
  5 s x 1.5^n, capped at 60 s. The attempt counter resets only after 30 s of stable
  connection, so a session that flaps open-close backs off instead of reconnecting
  hundreds of times an hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

BACKOFF_BASE = 5.0
BACKOFF_FACTOR = 1.5
BACKOFF_MAX = 60.0
STABLE_AFTER = timedelta(seconds=30)

LOGGED_OUT = 401
REPLACED = 440
BAD_SESSION = 500
RESTART_REQUIRED = 515

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


@dataclass(frozen=True)
class Decision:
    action: str
    status: str
    reconnect_attempts: int
    next_reconnect_at: datetime | None = None
    alert: str | None = None  # None: leave the alert as it is; "": clear it
    desired: str | None = None  # None: unchanged


def backoff_delay(attempts: int) -> float:
    """Seconds before reconnect attempt number `attempts` (0-based): 5, 7.5, 11.25, ... 60."""
    return min(BACKOFF_MAX, BACKOFF_BASE * BACKOFF_FACTOR**attempts)


def decide(observed: Observed, recorded: Recorded, now: datetime) -> Decision:
    attempts = recorded.reconnect_attempts
    if recorded.desired != "running":
        if observed.live and not observed.stopping:
            return Decision(STOP, "stopping", attempts)
        return Decision(NOTHING, "stopped", attempts)

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
    if code == RESTART_REQUIRED and attempts == 0:
        return Decision(START, "reconnecting", attempts + 1)

    # Back off (500 bad session included: credentials stay).
    if recorded.next_reconnect_at is None:
        due = now + timedelta(seconds=backoff_delay(attempts))
        return Decision(WAIT, "backoff", attempts, due)
    if now >= recorded.next_reconnect_at:
        return Decision(START, "reconnecting", attempts + 1)
    return Decision(WAIT, "backoff", attempts, recorded.next_reconnect_at)
