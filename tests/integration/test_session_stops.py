"""A WhatsApp Web session that closes for a reason that will not heal (banned, outdated
version, bad session, unknown code, an unscanned QR code) or that keeps dropping is
stopped, not reconnected forever: staff see why on the Sessions page, on the dashboard
and in /metrics, and pressing Start clears the stop."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tests.support.baileys import connect
from tests.support.metrics import scrape
from tests.support.waiting import wait_for
from whatsapp.models import SessionState


def halted(tenant_slug: str) -> SessionState | None:
    return SessionState.objects.filter(tenant__slug=tenant_slug, status="halted").first()


def health_checks_pass(tenant_slug: str, count: int) -> None:
    """Wait until the lifecycle worker's health check has looked at the session `count`
    more times (each check rewrites the row)."""
    seen = [SessionState.objects.get(tenant__slug=tenant_slug).updated_at]

    def checked() -> bool:
        now = SessionState.objects.get(tenant__slug=tenant_slug).updated_at
        if now != seen[-1]:
            seen.append(now)
        return len(seen) > count

    wait_for(checked, 15, message=f"{count} health checks")


@pytest.fixture
def baileys_tenant(tenant):
    tenant.baileys_enabled = True
    tenant.save()
    return tenant


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_banned_number_is_stopped_once_and_staff_see_why_until_they_press_start(
    baileys_tenant, sandbox, lifecycle_worker, admin_client
):
    lifecycle_worker()
    connect("acme")
    sockets_before = sandbox.state("acme")["socketsCreated"]

    sandbox.disconnect("acme", 403)

    state = wait_for(lambda: halted("acme"), 10, message="the session stopped by the policy")
    assert state.stop_reason == "banned" and state.desired == "stopped"
    assert "403" in state.alert and "banned" in state.alert
    health_checks_pass("acme", 3)
    assert sandbox.state("acme")["socketsCreated"] == sockets_before, "no reconnect after a ban"
    assert halted("acme") is not None

    page = admin_client.get("/admin/whatsapp/sessionstate/tenant/acme/").content.decode()
    assert 'id="session-stop-reason"' in page and "banned or blocked" in page

    admin_client.post("/admin/whatsapp/sessionstate/tenant/acme/start/")
    # The admin enqueued the start on the baileys queue; the lifecycle worker runs it.
    state = connect("acme")
    assert (state.stop_reason, state.stopped_at, state.alert) == ("", None, "")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_session_that_keeps_dropping_gives_up_after_its_reconnect_budget(baileys_tenant, sandbox, lifecycle_worker):
    lifecycle_worker(SESSION_RECONNECT_BUDGET=1)
    connect("acme")

    sandbox.disconnect("acme", 428)  # transient: reconnected after 5 s (attempt 1 of 1)
    wait_for(lambda: SessionState.objects.filter(tenant__slug="acme", status="connected",
                                                 reconnect_attempts=1).first(), 15, message="the reconnect")
    sandbox.disconnect("acme", 428)  # again, within 30 s: the budget is spent

    state = wait_for(lambda: halted("acme"), 10, message="the session stopped after its budget")
    assert state.stop_reason == "budget_exhausted"
    assert "gave up after 1 reconnects" in state.alert


@pytest.mark.django_db
def test_the_dashboard_counts_stopped_sessions_and_says_why(client, tenant, redis_server):
    SessionState.objects.create(tenant=tenant, status="halted", desired="stopped", stop_reason="outdated_version",
                                stopped_at=timezone.now(), alert="Stopped: 405 ...")
    client.force_login(User.objects.create_user("ops", password="pw-for-tests-only", is_staff=True))

    response = client.get("/admin/ops/")

    assert response.context["s"]["sessions_stopped"] == 1
    page = response.content.decode()
    assert 'id="ops-sessions-stopped"' in page and "outdated_version" in page


@pytest.mark.django_db
def test_metrics_show_each_stopped_session_with_its_reason(client, tenant, redis_server):
    SessionState.objects.create(tenant=tenant, status="halted", desired="stopped", stop_reason="bad_session",
                                stopped_at=timezone.now())

    found = scrape(client)

    assert found[("whatsapp_session_stopped", (("reason", "bad_session"), ("tenant", "acme")))] == 1
