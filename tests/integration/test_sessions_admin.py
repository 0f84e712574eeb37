"""The admin Sessions page: staff see each tenant's WhatsApp session as the lifecycle
worker recorded it, scan its QR code, and press buttons that only enqueue lifecycle
tasks on the `baileys` queue (the web process never calls the sidecar)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from tests.support.redis_server import queued_tasks
from whatsapp.models import SessionState
from whatsapp.sessions.admin import ACTIONS, qr_data_uri

pytestmark = pytest.mark.django_db

QR = "2@Zm9vYmFy,dGhpcyBpcyBub3QgYSByZWFsIGtleQ==,cHVibGljIGtleQ==,c2VjcmV0"


def test_staff_see_the_session_status_and_the_qr_code_to_scan(admin_client, tenant):
    SessionState.objects.create(tenant=tenant, desired="running", status="waiting_for_qr", qr=QR)

    page = admin_client.get("/admin/whatsapp/sessionstate/tenant/acme/").content.decode()

    assert "waiting_for_qr" in page
    assert 'id="session-qr"' in page
    assert qr_data_uri(QR).replace("&", "&amp;") in page or qr_data_uri(QR) in page
    assert qr_data_uri(QR).startswith("data:image/svg+xml")
    for action in ("Start", "Stop", "Restart", "Logout"):
        assert f'value="{action}"' in page


def test_a_connected_session_shows_no_qr_code_and_says_it_can_send(admin_client, tenant):
    SessionState.objects.create(tenant=tenant, desired="running", status="connected", connected=True,
                                can_send=True, auth_paired=True)
    page = admin_client.get("/admin/whatsapp/sessionstate/tenant/acme/").content.decode()
    assert "session-qr" not in page
    assert "connected" in page


def test_the_sessions_list_offers_tenants_that_have_no_session_yet(admin_client, tenant):
    page = admin_client.get("/admin/whatsapp/sessionstate/").content.decode()
    assert "/admin/whatsapp/sessionstate/tenant/acme/" in page


@pytest.mark.parametrize("action", ["start", "stop", "restart", "logout"])
def test_a_button_enqueues_the_lifecycle_task_on_the_baileys_queue(admin_client, tenant, redis_server, action):
    response = admin_client.post(f"/admin/whatsapp/sessionstate/tenant/acme/{action}/")

    assert response.status_code == 302
    assert queued_tasks(redis_server) == [(f"whatsapp.lifecycle.{action}", ["acme"])]


def staff_with(client, *codenames: str) -> User:
    user = User.objects.create_user("sam", password="pw-1234-long", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def test_staff_who_may_only_view_sessions_cannot_press_the_buttons(client, tenant, redis_server):
    staff_with(client, "view_sessionstate")

    assert client.get("/admin/whatsapp/sessionstate/tenant/acme/").status_code == 200
    assert client.post("/admin/whatsapp/sessionstate/tenant/acme/logout/").status_code == 403
    assert queued_tasks(redis_server) == []


@pytest.mark.parametrize("codenames", [("view_sessionstate",), ("view_sessionstate", "change_sessionstate")])
def test_staff_without_the_session_permission_see_the_status_but_not_the_qr_code_or_the_buttons(
    client, tenant, redis_server, codenames
):
    SessionState.objects.create(tenant=tenant, desired="running", status="waiting_for_qr", qr=QR)
    staff_with(client, *codenames)

    page = client.get("/admin/whatsapp/sessionstate/tenant/acme/").content.decode()

    assert "waiting_for_qr" in page
    assert "session-qr" not in page and "data:image/svg+xml" not in page
    assert "A QR code is waiting to be scanned" in page and "whatsapp.manage_session" in page
    assert 'value="Logout"' not in page and 'value="Start"' not in page
    for action in ACTIONS:
        assert client.post(f"/admin/whatsapp/sessionstate/tenant/acme/{action}/").status_code == 403
    assert queued_tasks(redis_server) == []


def test_staff_with_the_session_permission_see_the_qr_code_and_can_press_the_buttons(client, tenant, redis_server):
    SessionState.objects.create(tenant=tenant, desired="running", status="waiting_for_qr", qr=QR)
    staff_with(client, "view_sessionstate", "manage_session")

    page = client.get("/admin/whatsapp/sessionstate/tenant/acme/").content.decode()
    response = client.post("/admin/whatsapp/sessionstate/tenant/acme/restart/")

    assert 'id="session-qr"' in page and 'value="Logout"' in page
    assert "session-no-manage" not in page
    assert response.status_code == 302
    assert queued_tasks(redis_server) == [("whatsapp.lifecycle.restart", ["acme"])]


def test_nobody_deletes_a_session_record_in_the_admin(admin_client, tenant):
    state = SessionState.objects.create(tenant=tenant, desired="running", status="connected", connected=True)

    assert admin_client.post(f"/admin/whatsapp/sessionstate/{state.pk}/delete/", {"post": "yes"}).status_code == 403
    admin_client.post("/admin/whatsapp/sessionstate/", {"action": "delete_selected", "_selected_action": [state.pk],
                                                        "post": "yes"})

    assert SessionState.objects.filter(pk=state.pk).exists()


def test_in_sandbox_mode_a_simulate_scanning_button_beside_the_qr_enqueues_the_scan(
    admin_client, tenant, redis_server, settings
):
    settings.SIDECAR_TRANSPORT = "sandbox"
    SessionState.objects.create(tenant=tenant, desired="running", status="waiting_for_qr", qr=QR)

    page = admin_client.get("/admin/whatsapp/sessionstate/tenant/acme/").content.decode()
    assert 'value="Simulate scanning"' in page
    response = admin_client.post("/admin/whatsapp/sessionstate/tenant/acme/simulate_scan/")

    assert response.status_code == 302
    assert queued_tasks(redis_server) == [("whatsapp.lifecycle.simulate_scan", ["acme"])]


def test_with_real_whatsapp_there_is_no_simulate_scanning_button_and_the_action_is_refused(
    admin_client, tenant, redis_server, settings
):
    settings.SIDECAR_TRANSPORT = "baileys"
    SessionState.objects.create(tenant=tenant, desired="running", status="waiting_for_qr", qr=QR)

    page = admin_client.get("/admin/whatsapp/sessionstate/tenant/acme/").content.decode()
    assert "Simulate scanning" not in page
    response = admin_client.post("/admin/whatsapp/sessionstate/tenant/acme/simulate_scan/", follow=True)

    assert "Unknown action" in response.content.decode()
    assert queued_tasks(redis_server) == []
