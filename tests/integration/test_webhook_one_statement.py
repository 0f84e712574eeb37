"""Issue 16: Twilio's webhook stores its message in one PostgreSQL statement and finds its
tenant in a short-lived per-process cache. What a customer or Twilio would notice must not
change: a stored message, one contact per phone, a re-delivery that changes nothing, a
tenant deleted or renamed answered 404 (not 500, not stored under the old tenant)."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.support.twilio_webhooks import post_twilio, twilio_form
from whatsapp.inbound import tenants
from whatsapp.models import Contact, Message, Tenant

PATH = "/webhooks/twilio/acme/"

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement store is PostgreSQL's")


@pytest.fixture(autouse=True)
def empty_cache():
    tenants.forget()
    yield
    tenants.forget()


@pytest.fixture
def broker(redis_server):
    return redis_server.client()


def test_a_redelivery_leaves_the_contact_as_it_was(client, tenant, broker, django_capture_on_commit_callbacks):
    form = twilio_form(Body="hello", ProfileName="Dana")
    with django_capture_on_commit_callbacks(execute=True):
        assert post_twilio(client, PATH, form).status_code == 200
    contact = Contact.objects.get()
    Contact.objects.filter(pk=contact.pk).update(name="Dana (edited by staff)")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert post_twilio(client, PATH, form).status_code == 200

    assert callbacks == []
    again = Contact.objects.get()
    assert (again.name, again.last_twilio_inbound_at) == ("Dana (edited by staff)", contact.last_twilio_inbound_at)
    assert Message.objects.count() == 1


def test_a_known_customer_keeps_one_contact_with_a_new_name_and_a_reopened_window(
    client, tenant, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_twilio(client, PATH, twilio_form(MessageSid="SM" + "1" * 32, ProfileName="Dana"))
    first = Contact.objects.get().last_twilio_inbound_at
    with django_capture_on_commit_callbacks(execute=True):
        post_twilio(client, PATH, twilio_form(MessageSid="SM" + "2" * 32, ProfileName=""))
    with django_capture_on_commit_callbacks(execute=True):
        post_twilio(client, PATH, twilio_form(MessageSid="SM" + "3" * 32, ProfileName="Dana K."))

    contact = Contact.objects.get()
    assert contact.name == "Dana K."  # an empty ProfileName did not erase it
    assert contact.last_twilio_inbound_at > first
    assert list(Message.objects.order_by("pk").values_list("contact_id", flat=True)) == [contact.pk] * 3


@pytest.mark.django_db(transaction=True)
def test_a_tenant_deleted_while_cached_is_a_404_not_a_500(client, broker):
    tenant = Tenant.objects.create(slug="acme", name="Acme", twilio_number="+14155238886")
    assert post_twilio(client, PATH, twilio_form(MessageSid="SM" + "1" * 32)).status_code == 200
    # Deleted elsewhere (no signal in this process): the cache still holds it.
    Tenant.objects.filter(pk=tenant.pk).delete()
    tenants._cache["acme"] = (float("inf"), tenant)

    response = post_twilio(client, PATH, twilio_form(MessageSid="SM" + "2" * 32))

    assert response.status_code == 404
    assert not Message.objects.filter(provider_message_id="SM" + "2" * 32).exists()


@pytest.mark.django_db(transaction=True)
def test_a_tenant_recreated_under_the_same_slug_gets_the_message(client, broker):
    old = Tenant.objects.create(slug="acme", name="Acme", twilio_number="+14155238886")
    assert post_twilio(client, PATH, twilio_form(MessageSid="SM" + "1" * 32)).status_code == 200
    Tenant.objects.filter(pk=old.pk).delete()
    tenants._cache["acme"] = (float("inf"), old)
    new = Tenant.objects.bulk_create([Tenant(slug="acme", name="Acme again", twilio_number="+14155238886")])[0]

    assert post_twilio(client, PATH, twilio_form(MessageSid="SM" + "2" * 32)).status_code == 200

    assert Message.objects.get(provider_message_id="SM" + "2" * 32).tenant_id == new.pk


@pytest.mark.django_db(transaction=True)
def test_a_rename_saved_in_this_process_is_seen_at_once(client, broker):
    tenant = Tenant.objects.create(slug="acme", name="Acme", twilio_number="+14155238886")
    assert post_twilio(client, PATH, twilio_form(MessageSid="SM" + "1" * 32)).status_code == 200
    assert "acme" in tenants._cache

    tenant.slug = "acme-renamed"
    tenant.save()

    assert post_twilio(client, PATH, twilio_form(MessageSid="SM" + "2" * 32)).status_code == 404


def test_the_statement_is_planned_once_per_database_connection(client, tenant, broker):
    for body in ("first", "second", "third"):
        assert post_twilio(client, PATH, twilio_form(Body=body)).status_code == 200

    assert _prepared_webhook_statements() == 1
    assert list(Message.objects.order_by("pk").values_list("body", flat=True)) == ["first", "second", "third"]


def test_behind_a_pooler_without_prepared_statements_a_webhook_is_stored_the_same(client, tenant, broker, settings):
    settings.DB_PREPARED_STATEMENTS = False
    prepared_before = _prepared_webhook_statements()
    form = twilio_form(Body="hello")
    for _ in range(2):
        assert post_twilio(client, PATH, form).status_code == 200

    assert _prepared_webhook_statements() == prepared_before
    assert Message.objects.get().body == "hello"


def _prepared_webhook_statements() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'WITH dup AS%'")
        return cursor.fetchone()[0]


def test_the_stored_rows_carry_the_models_defaults(client, tenant, broker):
    assert post_twilio(client, PATH, twilio_form(Body="hello")).status_code == 200
    assert post_twilio(client, PATH, twilio_form(Body="again")).status_code == 200

    first, second = Message.objects.order_by("pk")
    assert (first.attempt_count, first.parts_sent, first.key_generation, first.engine, first.in_reply_to_id) == (0, 0, 0, "", None)
    assert first.updated_at == first.created_at
    assert len({first.correlation_id, second.correlation_id, first.idempotency_key, second.idempotency_key}) == 4
    assert Contact.objects.get().created_at == first.created_at


@pytest.mark.django_db(transaction=True)
def test_a_webhook_after_the_database_dropped_its_connection_is_stored(client, tenant, broker):
    # A PostgreSQL restart (here: the server ending this connection) between two webhooks.
    # A new request runs no health check first: the statement finds the connection
    # broken and runs once more on a new one.
    import psycopg

    assert post_twilio(client, PATH, twilio_form(Body="before")).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    settings_dict = connection.settings_dict
    with psycopg.connect(host=settings_dict["HOST"], port=settings_dict["PORT"] or 5432, user=settings_dict["USER"],
                         dbname=settings_dict["NAME"], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    connection.health_check_done = False  # what Django does at the start of each request

    assert post_twilio(client, PATH, twilio_form(Body="after")).status_code == 200

    assert sorted(Message.objects.values_list("body", flat=True)) == ["after", "before"]
    assert broker.llen("ai") == 2, "both handed to the bot"
