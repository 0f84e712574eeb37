"""Pacing of sends through one WhatsApp session (whatsapp.outbound.pacing), on a real Redis."""

from __future__ import annotations

import pytest

from whatsapp.outbound import pacing


@pytest.fixture
def paced(redis_server, settings):
    settings.BAILEYS_PACING_BURST = 1
    return redis_server


def test_a_burst_gets_one_slot_a_second_at_sixty_a_minute(paced):
    waits = [pacing.reserve("acme", f"k{n}", per_minute=60, max_wait=10).wait for n in range(4)]
    assert waits[0] == 0
    for n, wait in enumerate(waits[1:], start=1):
        assert n - 0.1 <= wait <= n + 0.01


def test_sessions_are_paced_separately(paced):
    pacing.reserve("acme", "a1", per_minute=6, max_wait=60)
    assert pacing.reserve("other", "b1", per_minute=6, max_wait=60).wait == 0


def test_a_far_slot_is_deferred_and_kept_for_the_same_send(paced):
    pacing.reserve("acme", "k0", per_minute=60, max_wait=1.5)
    pacing.reserve("acme", "k1", per_minute=60, max_wait=1.5)
    far = pacing.reserve("acme", "k2", per_minute=60, max_wait=1.5)
    assert far.deferred and 1.8 <= far.wait <= 2.01
    # Coming back early, the same send finds its own slot (no second slot is taken) ...
    again = pacing.reserve("acme", "k2", per_minute=60, max_wait=1.5)
    assert again.deferred and again.wait <= far.wait
    # ... and the next send queues behind it.
    assert pacing.reserve("acme", "k3", per_minute=60, max_wait=10).wait >= 2.8


def test_a_send_that_returns_near_its_slot_may_go(paced):
    pacing.reserve("acme", "k0", per_minute=60, max_wait=0.5)
    deferred = pacing.reserve("acme", "k1", per_minute=60, max_wait=0.5)
    assert deferred.deferred
    near = pacing.reserve("acme", "k1", per_minute=60, max_wait=5)
    assert not near.deferred and near.wait <= 1.0
