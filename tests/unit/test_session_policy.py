"""The reconnect policy of a WhatsApp Web session (whatsapp.sessions.policy): pure rules,
given the sidecar's report and what was recorded, what the lifecycle worker does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from whatsapp.sessions.policy import (
    NOTHING,
    START,
    STOP,
    WAIT,
    Observed,
    Recorded,
    backoff_delay,
    decide,
)

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
RUNNING = Recorded(desired="running")


def down(code, reason="", paired=True) -> Observed:
    return Observed(disconnect_code=code, disconnect_reason=reason, auth_paired=paired)


def test_a_logged_out_session_is_not_reconnected_and_staff_are_told_to_scan_a_qr():
    decision = decide(down(401, "loggedOut"), Recorded("running", reconnect_attempts=2), NOW)
    assert decision.action == NOTHING
    assert decision.status == "logged_out"
    assert "QR" in decision.alert
    # However long it stays down, it is never reconnected by itself.
    later = decide(down(401), Recorded("running", 2, None), NOW + timedelta(hours=1))
    assert later.action == NOTHING


def test_a_replaced_session_is_stopped_and_raises_an_alert():
    decision = decide(down(440, "connectionReplaced"), RUNNING, NOW)
    assert decision.action == STOP
    assert decision.status == "replaced"
    assert decision.desired == "stopped"
    assert "another WhatsApp Web" in decision.alert


@pytest.mark.parametrize("code, reason, stop_reason, hint", [
    (403, "forbidden", "banned", "banned"),
    (405, "outdatedVersion", "outdated_version", "SIDECAR_WA_VERSION"),
    (411, "multideviceMismatch", "multidevice_mismatch", "Logout"),
    (500, "badSession", "bad_session", "credentials"),
    (499, "unknown", "unknown_code", "499"),
])
def test_a_close_that_will_not_heal_stops_the_session_with_a_reason_staff_can_read(code, reason, stop_reason, hint):
    decision = decide(down(code, reason), RUNNING, NOW)
    assert (decision.action, decision.status, decision.desired) == (STOP, "halted", "stopped")
    assert decision.stop_reason == stop_reason
    assert hint in decision.alert and "start" in decision.alert.lower()
    assert len(decision.alert) <= 200


def test_a_halted_session_stays_halted_and_is_never_reconnected_by_itself():
    halted = Recorded("stopped", 0, None, stop_reason="banned")
    for minutes in (0, 5, 600):
        decision = decide(down(403), halted, NOW + timedelta(minutes=minutes))
        assert (decision.action, decision.status) == (NOTHING, "halted")


def test_a_session_that_closes_before_a_phone_was_linked_stops_instead_of_showing_qr_codes_forever():
    # Baileys ends an unscanned QR session with 408 "QR refs attempts ended".
    decision = decide(down(408, "connectionLost", paired=False), RUNNING, NOW)
    assert (decision.action, decision.stop_reason) == (STOP, "qr_not_scanned")
    assert "scan" in decision.alert


def test_a_bad_session_never_logs_out():
    assert decide(down(500, "badSession"), RUNNING, NOW).action not in {"logout"}


@pytest.mark.parametrize("code", [408, 428, 503, None])
def test_a_transient_close_is_reconnected_with_backoff(code):
    first = decide(down(code), RUNNING, NOW)
    assert first.action == WAIT
    assert first.next_reconnect_at == NOW + timedelta(seconds=5)
    due = decide(down(code), Recorded("running", 0, first.next_reconnect_at), first.next_reconnect_at)
    assert due.action == START


def test_after_the_budget_of_reconnects_without_a_stable_connection_the_session_stops():
    decision = decide(down(428, "connectionClosed"), Recorded("running", 10, None), NOW, budget=10)
    assert (decision.action, decision.stop_reason) == (STOP, "budget_exhausted")
    assert "gave up after 10 reconnects" in decision.alert
    assert decide(down(428), Recorded("running", 9, None), NOW, budget=10).action == WAIT


def test_a_restart_required_session_is_restarted_at_once_the_first_time():
    assert decide(down(515, "restartRequired"), RUNNING, NOW).action == START
    # A second 515 in a row without a stable connection backs off instead.
    assert decide(down(515), Recorded("running", 1, None), NOW).action == WAIT


@pytest.mark.parametrize("attempts, seconds", [(0, 5), (1, 7.5), (2, 11.25), (3, 16.875), (6, 56.953125), (7, 60), (40, 60)])
def test_backoff_grows_by_half_from_five_seconds_up_to_a_minute(attempts, seconds):
    assert backoff_delay(attempts) == pytest.approx(seconds)


def test_a_lost_connection_waits_for_its_backoff_then_reconnects_and_counts_the_attempt():
    waiting = decide(down(428, "connectionClosed"), Recorded("running", 3, None), NOW)
    assert waiting.action == WAIT
    assert waiting.next_reconnect_at == NOW + timedelta(seconds=backoff_delay(3))
    early = decide(down(428), Recorded("running", 3, waiting.next_reconnect_at), NOW + timedelta(seconds=1))
    assert early.action == WAIT
    due = decide(down(428), Recorded("running", 3, waiting.next_reconnect_at), waiting.next_reconnect_at)
    assert due.action == START
    assert due.reconnect_attempts == 4


def test_a_session_that_vanished_without_a_reason_is_reconnected_with_backoff():
    # The sidecar restarted: no socket, no last disconnect.
    decision = decide(Observed(auth_paired=True), RUNNING, NOW)
    assert decision.action == WAIT


def test_the_attempt_counter_resets_only_after_thirty_seconds_of_stable_connection():
    short = Observed(connected=True, can_send=True, connected_since=NOW - timedelta(seconds=10))
    assert decide(short, Recorded("running", 5, None), NOW).reconnect_attempts == 5
    stable = Observed(connected=True, can_send=True, connected_since=NOW - timedelta(seconds=31))
    decision = decide(stable, Recorded("running", 5, None), NOW)
    assert decision.reconnect_attempts == 0
    assert decision.status == "connected"


def test_a_flapping_session_backs_off_and_gives_up_after_its_budget():
    """Open for 5 s, closed, again and again: the counter never resets, so the waits grow
    and after `budget` reconnects the session stops and staff are told, instead of
    reconnecting about once a minute forever."""
    now, recorded, reconnects, stopped = NOW, Recorded("running", 0, None), 0, None
    connected_at = None
    while now < NOW + timedelta(hours=1) and stopped is None:
        if connected_at is not None and now - connected_at < timedelta(seconds=5):
            observed = Observed(connected=True, can_send=True, connected_since=connected_at, auth_paired=True)
        else:
            connected_at = None
            observed = down(428)
        decision = decide(observed, recorded, now, budget=10)
        recorded = Recorded("running", decision.reconnect_attempts, decision.next_reconnect_at)
        if decision.action == START:
            reconnects += 1
            connected_at = now
            recorded = Recorded("running", decision.reconnect_attempts, None)
        elif decision.action == STOP:
            stopped = decision
        now += timedelta(seconds=1)
    assert reconnects == 10
    assert stopped is not None and stopped.stop_reason == "budget_exhausted"
    assert now - NOW < timedelta(minutes=10)


def test_a_session_waiting_for_a_qr_scan_is_left_alone():
    decision = decide(Observed(qr="2@abc"), RUNNING, NOW)
    assert (decision.action, decision.status) == (NOTHING, "waiting_for_qr")


def test_a_session_staff_stopped_is_not_reconnected_and_a_stray_socket_is_stopped():
    assert decide(down(428), Recorded("stopped"), NOW).action == NOTHING
    live = Observed(connected=True, can_send=True, connected_since=NOW)
    assert decide(live, Recorded("stopped"), NOW).action == STOP
