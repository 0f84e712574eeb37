"""Staff see the shards (who owns each, its fencing token, lease, sidecar and tenants) and
move a tenant by changing its shard: the page queues the move on the OLD shard's queue
(whose owner stops the session first) instead of switching the field, and the Sessions
page's buttons go to the queue of the tenant's shard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.redis_server import queued_tasks
from tests.support.tenant_admin import tenant_form
from whatsapp.models import Shard, Tenant

pytestmark = pytest.mark.django_db(transaction=True)  # the move is queued after the admin's commit


@pytest.fixture
def shards(db):
    Shard.objects.get_or_create(name="default")
    Shard.objects.create(name="s1", owner="host-a:1:abc", fencing_token=4, sidecar_url="http://10.0.0.5:3101",
                         lease_expires_at=timezone.now() + timedelta(seconds=20))
    Shard.objects.create(name="s2")


def test_the_shards_page_shows_each_owner_token_sidecar_and_tenant_count(admin_client, tenant, shards):
    Tenant.objects.create(slug="bistro", name="Bistro", shard_id="s1")

    page = admin_client.get("/admin/whatsapp/shard/").content.decode()

    assert "host-a:1:abc" in page and "http://10.0.0.5:3101" in page
    assert "(none: no lifecycle worker holds it)" in page  # s2
    rows = {name: page.split(f">{name}<", 1)[1].split("</tr>", 1)[0] for name in ("default", "s1", "s2")}
    assert ">4<" in rows["s1"] and ">1<" in rows["s1"]  # token 4, one tenant
    assert ">1<" in rows["default"]  # acme, whose shard is empty
    assert ">0<" in rows["s2"]


def test_changing_a_tenant_s_shard_queues_a_move_on_its_old_shard_s_queue(admin_client, tenant, shards,
                                                                           redis_server):
    tenant.shard_id = "s1"
    tenant.save()

    response = admin_client.post(f"/admin/whatsapp/tenant/{tenant.pk}/change/", tenant_form(tenant, shard="s2"),
                                 follow=True)

    assert response.status_code == 200
    assert Tenant.objects.get(pk=tenant.pk).shard_id == "s1", "switched by the move, not by the form"
    assert queued_tasks(redis_server, "baileys.s1") == [("whatsapp.lifecycle.move", ["acme", "s2"])]
    assert "move of acme to shard s2 queued" in response.content.decode().lower()


def test_the_session_buttons_go_to_the_queue_of_the_tenant_s_shard(admin_client, tenant, shards, redis_server):
    tenant.shard_id = "s1"
    tenant.save()

    admin_client.post("/admin/whatsapp/sessionstate/tenant/acme/restart/")

    assert queued_tasks(redis_server, "baileys.s1") == [("whatsapp.lifecycle.restart", ["acme"])]
    assert queued_tasks(redis_server, "baileys") == []
