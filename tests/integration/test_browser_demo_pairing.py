"""Demo mode's pairing flow in a real browser: the sidecar runs the sandbox with
SIDECAR_SANDBOX_PAIRING=manual (as `make run` sets it), so the Sessions page first shows
a QR code, and the "Simulate scanning" button pairs the session, which then shows as
connected. Real lifecycle worker, real sidecar, real Redis; no phone."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User

from tests.support.browser import PASSWORD, assert_styled, log_in
from whatsapp.models import SessionState

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def reload_until(page, predicate, timeout: float = 30) -> None:  # noqa: F811 - `page` is the fixture's value
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    assert predicate()


def test_the_demo_session_shows_a_qr_code_then_connects_after_simulate_scanning(
    page, tenant, lifecycle_worker, settings, tmp_path  # noqa: F811
):
    settings.SIDECAR_TRANSPORT = "sandbox"
    tenant.baileys_enabled = True
    tenant.save()
    lifecycle_worker(SIDECAR_SANDBOX_PAIRING="manual")
    admin = User.objects.create_superuser("owner", "owner@example.com", PASSWORD)

    log_in(page, admin)
    page.goto(f"/admin/whatsapp/sessionstate/tenant/{tenant.slug}/")
    page.click("input[value=Start]")
    qr = page.locator("img#session-qr")
    reload_until(page, lambda: qr.count() == 1)
    assert qr.evaluate("img => img.complete && img.naturalWidth") > 0
    assert_styled(page)
    page.screenshot(path=tmp_path / "demo-session-qr.png", full_page=True)
    assert "waiting_for_qr" in page.inner_text("#session-status")

    page.click("#simulate-scan")
    status = page.locator("#session-status")
    reload_until(page, lambda: "connected" in status.inner_text() and qr.count() == 0)
    page.screenshot(path=tmp_path / "demo-session-connected.png", full_page=True)
    assert "Simulate scanning" not in page.content()
    state = SessionState.objects.get(tenant=tenant)
    assert state.auth_paired and state.can_send and not state.qr
