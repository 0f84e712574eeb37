"""Pages staff meet first, in a real browser at 1280 px wide: the Sessions list and a
session's page (with a long alert and disconnect reason) and the tenant page fit the
window: no table or button pushed off-screen. Screenshots go to the test's tmp dir, or to
BROWSER_SCREENSHOTS_DIR when set (to look at them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from tests.support.browser import PASSWORD, assert_styled, log_in
from whatsapp.models import SessionState, Tenant

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WIDTH = 1280
LONG_QR = "2@" + "Xk3v9Qm1Lr7TzN0pWc5Hd8Ys2Bf4Gj6A" * 4 + ",bG9uZ2tleQ==,c2lnbmVka2V5,ZGV2aWNl"


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("BROWSER_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def operator(db):
    """Staff who look after WhatsApp sessions and tenants."""
    user = User.objects.create_user("olga", password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=[
        "view_sessionstate", "manage_session", "view_tenant", "change_tenant", "view_message", "view_rule",
    ]))
    return user


def overflow(tab) -> list[str]:
    """What does not fit a window WIDTH px wide: a horizontal scroll bar on the page, a
    table, form, button or image past the right edge, or a box (such as the admin's
    results list) that hides part of its content behind a scroll bar of its own."""
    return tab.evaluate(
        """(width) => {
            const out = [];
            const name = (e) => e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '');
            if (document.documentElement.scrollWidth > width) out.push('page ' + document.documentElement.scrollWidth);
            for (const e of document.querySelectorAll('#content table, #content form, #content input, #content img, #content a.button')) {
                const right = e.getBoundingClientRect().right;
                if (right > width) out.push(name(e) + ' ends at ' + Math.round(right));
            }
            for (const e of document.querySelectorAll('#content div, #content table, #content td, #content th')) {
                if (getComputedStyle(e).overflowX !== 'visible' && e.scrollWidth > e.clientWidth + 1)
                    out.push(name(e) + ' hides ' + (e.scrollWidth - e.clientWidth) + ' px');
            }
            return out;
        }""",
        WIDTH,
    )


def a_troubled_session(tenant: Tenant) -> SessionState:
    now = timezone.now()
    return SessionState.objects.create(
        tenant=tenant, desired="running", status="waiting_for_qr", qr=LONG_QR, reconnect_attempts=7,
        last_disconnect_code=515, last_disconnect_reason="connectionReplaced", last_disconnect_at=now,
        next_reconnect_at=now, alert="The session keeps disconnecting: check that the phone is online and that "
        "WhatsApp is up to date on it, then press Restart; if it still fails, log out and pair again.",
    )


def test_the_sessions_pages_fit_a_1280_px_window(page, operator, tenant, shots):  # noqa: F811 - the fixture
    a_troubled_session(tenant)
    Tenant.objects.create(slug="a-business-with-a-rather-long-slug", name="A Business With A Rather Long Name Ltd")

    log_in(page, operator)
    page.goto("/admin/whatsapp/sessionstate/")
    assert_styled(page)
    page.screenshot(path=shots / "sessions-list-1280.png", full_page=True)
    assert overflow(page) == []

    page.goto(f"/admin/whatsapp/sessionstate/tenant/{tenant.slug}/")
    page.locator("img#session-qr").wait_for(state="visible")
    page.screenshot(path=shots / "session-1280.png", full_page=True)
    assert overflow(page) == []
    for action in ("Start", "Stop", "Restart", "Logout"):
        assert page.locator(f"input[value='{action}']").is_visible()


def test_the_tenant_page_shows_where_to_point_twilio_and_fits_a_1280_px_window(page, operator, tenant, shots, settings,  # noqa: F811
                                                                                 redis_server):
    settings.PUBLIC_BASE_URL = "https://whatsapp-bot.a-rather-long-domain-name.example.com"
    tenant.baileys_enabled = True
    tenant.save()

    log_in(page, operator)
    page.goto(f"/admin/whatsapp/tenant/{tenant.pk}/change/")
    assert_styled(page)
    inbound = page.locator("#twilio-inbound-url")
    assert inbound.inner_text() == f"{settings.PUBLIC_BASE_URL}/webhooks/twilio/acme/"
    assert inbound.is_visible()
    page.screenshot(path=shots / "tenant-1280.png", full_page=True)
    assert overflow(page) == []

    # Turning WhatsApp Web off says the session is being stopped.
    page.uncheck("#id_baileys_enabled")
    page.click("input[name=_continue]")
    assert "its session is being stopped" in page.inner_text(".messagelist")
    page.screenshot(path=shots / "tenant-whatsapp-web-off-1280.png", full_page=True)

    page.click("#content .object-tools >> text=WhatsApp Web session")
    page.wait_for_url("**/admin/whatsapp/sessionstate/tenant/acme/")
