"""Tenant secrets (issue 11): encrypted at rest with FIELD_ENCRYPTION_KEYS (Fernet, the
first key encrypts, every key decrypts), write-only in the admin, never in a dump, and
production refuses to start without the key."""

from __future__ import annotations

import importlib
import io
import json

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.db import connection

from project.encryption import UndecryptableSecret, secret_is_set
from tests.support.settings_env import PRODUCTION_SECRETS, load_settings
from whatsapp.models import Tenant

pytestmark = pytest.mark.django_db

SECRET = "sk-live-SECRET-abc123"
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def stored_column(tenant) -> str:
    """What the database itself holds, read around Django."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT llm_api_key FROM whatsapp_tenant WHERE id = %s", [tenant.pk])
        return cursor.fetchone()[0]


def write_column(tenant, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE whatsapp_tenant SET llm_api_key = %s WHERE id = %s", [value, tenant.pk])


@pytest.fixture
def keyed(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD_KEY]
    return settings


def test_the_database_holds_a_token_never_the_key_itself(tenant, keyed):
    tenant.llm_api_key = SECRET
    tenant.save()

    raw = stored_column(tenant)
    assert SECRET not in raw
    assert Fernet(OLD_KEY).decrypt(raw.encode()).decode() == SECRET
    assert Tenant.objects.get(pk=tenant.pk).llm_api_key == SECRET


def test_after_a_key_rotation_the_old_key_second_still_decrypts_and_the_command_re_encrypts(tenant, keyed):
    tenant.llm_api_key = SECRET
    tenant.save()

    keyed.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert Tenant.objects.get(pk=tenant.pk).llm_api_key == SECRET
    call_command("rotate_field_encryption", stdout=io.StringIO())

    keyed.FIELD_ENCRYPTION_KEYS = [NEW_KEY]  # the old key dropped
    assert Tenant.objects.get(pk=tenant.pk).llm_api_key == SECRET
    assert MultiFernet([Fernet(NEW_KEY)]).decrypt(stored_column(tenant).encode()).decode() == SECRET


def test_a_key_dropped_too_early_reads_as_set_and_saving_the_tenant_keeps_the_stored_token(tenant, keyed):
    tenant.llm_api_key = SECRET
    tenant.save()
    token = stored_column(tenant)

    keyed.FIELD_ENCRYPTION_KEYS = [NEW_KEY]
    unreadable = Tenant.objects.get(pk=tenant.pk)
    assert isinstance(unreadable.llm_api_key, UndecryptableSecret) and secret_is_set(unreadable.llm_api_key)
    unreadable.name = "Renamed"
    unreadable.save()

    assert stored_column(tenant) == token
    keyed.FIELD_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert Tenant.objects.get(pk=tenant.pk).llm_api_key == SECRET


def test_dumpdata_shows_no_key_and_loaddata_reads_the_dump_back(tenant, keyed, tmp_path):
    tenant.llm_api_key = SECRET
    tenant.save()

    out = io.StringIO()
    call_command("dumpdata", "whatsapp.tenant", stdout=out)
    assert SECRET not in out.getvalue()

    dump = tmp_path / "tenants.json"
    dump.write_text(out.getvalue())
    Tenant.objects.filter(pk=tenant.pk).update(llm_api_key="")
    call_command("loaddata", str(dump), stdout=io.StringIO())
    assert Tenant.objects.get(pk=tenant.pk).llm_api_key == SECRET
    assert SECRET not in stored_column(tenant)
    assert json.loads(out.getvalue())[0]["fields"]["llm_api_key"].startswith("gAAAA")


def test_the_migration_encrypts_keys_stored_in_clear_text_once(tenant, keyed):
    write_column(tenant, SECRET)  # as the column held it before this migration
    migration = importlib.import_module("whatsapp.migrations.0008_tenant_secrets_encrypted")

    with connection.schema_editor() as editor:
        migration.encrypt_clear_text(apps, editor)
    token = stored_column(tenant)
    with connection.schema_editor() as editor:
        migration.encrypt_clear_text(apps, editor)

    assert SECRET not in token and stored_column(tenant) == token, "run twice, encrypted once"
    assert Tenant.objects.get(pk=tenant.pk).llm_api_key == SECRET
    with connection.schema_editor() as editor:
        migration.decrypt_to_clear_text(apps, editor)
    assert stored_column(tenant) == SECRET, "the migration can be reversed"


# --- The admin ------------------------------------------------------------------------------

def change_page(admin_client, tenant) -> str:
    return admin_client.get(f"/admin/whatsapp/tenant/{tenant.pk}/change/").content.decode()


def save(admin_client, tenant, **changes):
    from tests.support.tenant_admin import tenant_form

    response = admin_client.post(f"/admin/whatsapp/tenant/{tenant.pk}/change/", tenant_form(tenant, **changes))
    tenant.refresh_from_db()
    return response


def test_the_admin_says_whether_a_key_is_set_and_never_shows_it(admin_client, tenant):
    assert "Currently: not set" in change_page(admin_client, tenant)
    tenant.llm_api_key = SECRET
    tenant.save()

    page = change_page(admin_client, tenant)
    assert "Currently: set" in page and SECRET not in page


def test_saving_with_the_key_left_empty_keeps_it_and_clear_removes_it(admin_client, tenant):
    assert save(admin_client, tenant, llm_api_key="sk-typed-in").status_code == 302
    assert tenant.llm_api_key == "sk-typed-in"

    assert save(admin_client, tenant, name="Acme Bakery Ltd").status_code == 302
    assert (tenant.name, tenant.llm_api_key) == ("Acme Bakery Ltd", "sk-typed-in")
    change = LogEntry.objects.first().get_change_message().lower()
    assert "name" in change and "api key" not in change, "an untouched key is not logged as changed"

    refused = save(admin_client, tenant, llm_api_key="sk-other", clear_llm_api_key="on")
    assert "not both" in refused.content.decode() and tenant.llm_api_key == "sk-typed-in"
    assert "sk-other" not in refused.content.decode()

    assert save(admin_client, tenant, clear_llm_api_key="on").status_code == 302
    assert tenant.llm_api_key == ""


# --- Production ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "complaint"), [
    (None, "FIELD_ENCRYPTION_KEYS must be set in production"),
    ("not-a-key", "key 1 is not a Fernet key"),
    (f"{NEW_KEY},short", "key 2 is not a Fernet key"),
])
def test_production_refuses_to_start_without_a_valid_encryption_key(value, complaint):
    env = {k: v for k, v in PRODUCTION_SECRETS.items() if k != "FIELD_ENCRYPTION_KEYS"}
    if value is not None:
        env["FIELD_ENCRYPTION_KEYS"] = value
    result = load_settings(**env)
    assert result.returncode != 0 and complaint in result.stderr
    assert "short" not in result.stderr and "not-a-key" not in result.stderr, "a bad key is named by position"


def test_an_error_report_of_the_tenant_page_does_not_quote_a_key_typed_in(rf, admin_user, tenant, settings):
    """What an error e-mail (or the debug page) would show of the request."""
    from django.contrib.admin import site
    from django.contrib.sessions.backends.db import SessionStore
    from django.views.debug import ExceptionReporter

    from tests.support.tenant_admin import tenant_form

    form = tenant_form(tenant, name="", llm_api_key=SECRET)  # invalid, so the page renders again
    request = rf.post(f"/admin/whatsapp/tenant/{tenant.pk}/change/", form)
    request.user, request.session, request._dont_enforce_csrf_checks = admin_user, SessionStore(), True
    site._registry[Tenant].change_view(request, str(tenant.pk)).render()

    report = ExceptionReporter(request, RuntimeError, RuntimeError("boom"), None).get_traceback_text()
    assert "llm_api_key" in report and SECRET not in report
    assert settings.FIELD_ENCRYPTION_KEYS[0] not in ExceptionReporter(request, None, None, None).get_traceback_text()
