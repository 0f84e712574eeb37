"""The tenant page in the admin: the webhook URLs to paste into Twilio, links to the
tenant's session, messages and rules, and turning WhatsApp Web off stops its session."""

from __future__ import annotations

import pytest

from tests.support.redis_server import queued_tasks
from tests.support.tenant_admin import tenant_form
from tests.support.waiting import wait_for
from whatsapp.models import SessionState

pytestmark = pytest.mark.django_db


def page_of(client, tenant) -> str:
    response = client.get(f"/admin/whatsapp/tenant/{tenant.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_tenant_page_shows_the_webhook_urls_to_paste_into_twilio(admin_client, tenant, settings):
    settings.PUBLIC_BASE_URL = "https://bot.example.com"

    page = page_of(admin_client, tenant)

    assert '<code id="twilio-inbound-url">https://bot.example.com/webhooks/twilio/acme/</code>' in page
    assert '<code id="twilio-status-url">https://bot.example.com/webhooks/twilio/acme/status/</code>' in page
    assert "PUBLIC_BASE_URL</code> is not set" not in page


def test_without_a_public_base_url_the_urls_come_from_the_request_and_the_page_says_so(admin_client, tenant,
                                                                                          settings):
    settings.PUBLIC_BASE_URL = ""

    page = page_of(admin_client, tenant)

    assert '<code id="twilio-inbound-url">http://testserver/webhooks/twilio/acme/</code>' in page
    assert "PUBLIC_BASE_URL</code> is not set" in page
    assert "Twilio needs an https address" in page


def test_the_tenant_page_links_to_its_session_messages_and_rules_and_they_open(admin_client, tenant):
    page = page_of(admin_client, tenant)

    links = [
        "/admin/whatsapp/sessionstate/tenant/acme/",
        f"/admin/whatsapp/message/?tenant__id__exact={tenant.pk}",
        f"/admin/bots/rule/?tenant__id__exact={tenant.pk}",
    ]
    for link in links:
        assert f'href="{link}"' in page
        response = admin_client.get(link)
        assert response.status_code == 200, link  # a filter the admin refused would redirect with ?e=1


def test_staff_see_only_the_links_they_may_open(client, tenant):
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("tess", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_tenant", "change_tenant",
                                                                      "view_message"]))
    client.force_login(user)

    page = page_of(client, tenant)

    assert f'href="/admin/whatsapp/message/?tenant__id__exact={tenant.pk}"' in page
    assert "/admin/whatsapp/sessionstate/tenant/acme/" not in page and "/admin/bots/rule/" not in page


@pytest.mark.django_db(transaction=True)  # the stop is enqueued after the admin's transaction commits
def test_turning_whatsapp_web_off_stops_the_tenants_session(admin_client, tenant, redis_server):
    tenant.baileys_enabled = True
    tenant.save()

    response = admin_client.post(f"/admin/whatsapp/tenant/{tenant.pk}/change/",
                                 tenant_form(tenant, baileys_enabled=False), follow=True)

    assert response.status_code == 200
    tenant.refresh_from_db()
    assert tenant.baileys_enabled is False
    assert queued_tasks(redis_server) == [("whatsapp.lifecycle.stop", ["acme"])]
    assert "its session is being stopped" in response.content.decode()


@pytest.mark.parametrize(("before", "after"), [(True, True), (False, False), (False, True)])
def test_other_saves_leave_the_session_alone(admin_client, tenant, redis_server, django_capture_on_commit_callbacks,
                                             before, after):
    tenant.baileys_enabled = before
    tenant.save()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/whatsapp/tenant/{tenant.pk}/change/",
                                     tenant_form(tenant, baileys_enabled=after, name="Acme Bakery & Cafe"))

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.name, tenant.baileys_enabled) == ("Acme Bakery & Cafe", after)
    assert queued_tasks(redis_server) == []


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_turning_whatsapp_web_off_really_stops_a_connected_session(admin_client, tenant, sandbox, lifecycle_worker):
    from whatsapp.sessions import lifecycle

    tenant.baileys_enabled = True
    tenant.save()
    lifecycle_worker()
    lifecycle.start.delay("acme")
    wait_for(lambda: SessionState.objects.filter(tenant=tenant, status="connected").exists(), 20,
             message="the session to be connected")

    admin_client.post(f"/admin/whatsapp/tenant/{tenant.pk}/change/", tenant_form(tenant, baileys_enabled=False))

    state = wait_for(lambda: SessionState.objects.filter(tenant=tenant, status="stopped").first(), 20,
                     message="the session to be stopped")
    assert state.desired == "stopped" and not state.connected
    assert sandbox.status("acme")["connected"] is False
