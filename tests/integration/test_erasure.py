"""Erasing a customer: afterwards their number, its digits, their WhatsApp ids and their
name are in no table and no sidecar file; bad input or a sidecar that is down erases
nothing and says why. Real Django + PostgreSQL and the real sidecar process."""

from __future__ import annotations

import logging
import os
import subprocess
from datetime import timedelta

import pytest
import requests
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from bots.models import Rule
from tests.support.baileys import connect
from tests.support.paths import ROOT
from tests.support.ports import free_port
from tests.support.privacy import files_holding, redis_holding, tables_holding
from tests.support.waiting import wait_for
from whatsapp.models import Contact, DeadLetter, DeliveryAttempt, Direction, ErasureLog, Message, Status

pytestmark = pytest.mark.django_db
SIDECAR_DIR = ROOT / "whatsapp" / "sidecar"

PHONE = "+15551234567"
LID = "98765432101234@lid"
NAME = "Zelda Quist"
# The number with and without +, the LID's digits (so also both JIDs), and the name.
NEEDLES = [PHONE, PHONE[1:], LID.split("@")[0], NAME]


@pytest.fixture
def sidecar(settings, tmp_path):
    """The real sidecar process (sandbox transport) on a free port; returns its data dir."""
    port = free_port()
    data = tmp_path / "sidecar-data"
    env = {**os.environ, "SIDECAR_PORT": str(port), "SIDECAR_TOKEN": settings.SIDECAR_TOKEN,
           "SIDECAR_TRANSPORT": "sandbox", "SIDECAR_DATA_DIR": str(data), "SIDECAR_LOG_LEVEL": "warn"}
    proc = subprocess.Popen([settings.SIDECAR_NODE, "src/server.js"], cwd=SIDECAR_DIR, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings.SIDECAR_URL = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{settings.SIDECAR_URL}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return proc.poll() is not None

    wait_for(up, 15, message="the sidecar")
    assert proc.poll() is None, "the sidecar did not start"
    yield data
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def customer(tenant):
    """A customer with a whole history: a message (in which they wrote their number), our
    reply, a failed attempt naming them, a resolved dead letter, staff's admin history."""
    contact = Contact.objects.create(tenant=tenant, phone=PHONE, wa_jid=f"{PHONE[1:]}@s.whatsapp.net", lid_jid=LID,
                                     name=NAME)
    inbound = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND,
                                     status=Status.ANSWERED, provider="twilio", provider_message_id="SMcustomer1",
                                     body=f"call me back on {PHONE}")
    reply = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.OUTBOUND, status=Status.SENT,
                                   body=f"Sure {NAME}!", in_reply_to=inbound, last_error=f"To {PHONE} failed once")
    DeliveryAttempt.objects.create(message=reply, provider="twilio", outcome="transient",
                                   error=f"The 'To' number whatsapp:{PHONE} could not be reached")
    DeadLetter.objects.create(message=reply, reason="exhausted", last_error=f"whatsapp:{PHONE}",
                              resolved_at=timezone.now(), resolution="requeued", note=f"asked {NAME}")
    staff = User.objects.create_user("carol")
    LogEntry.objects.create(user=staff, content_type=ContentType.objects.get_for_model(Contact),
                            object_id=str(contact.pk), object_repr=str(contact), action_flag=CHANGE,
                            change_message=f"renamed {NAME}")
    return contact


@pytest.fixture
def bystander(tenant):
    """Another customer of the same tenant: the erasure must not touch them."""
    contact = Contact.objects.create(tenant=tenant, phone="+15557654321", name="Other")
    Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, status=Status.ANSWERED,
                           body="hello")
    return contact


def row_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def test_an_erased_customer_is_in_no_table_and_the_erasure_is_logged_without_them(
    customer, bystander, sidecar, caplog
):
    assert tables_holding(NEEDLES)  # the search finds them before

    with caplog.at_level(logging.INFO):
        call_command("erase_contact", "acme", PHONE)

    assert tables_holding(NEEDLES) == []
    record = ErasureLog.objects.get()
    assert record.tenant_slug == "acme" and record.via == "command" and record.requested_by.startswith("command:")
    assert record.counts == {
        "messages_in": 1, "messages_out": 1, "attempts": 1, "dead_letters": 1, "admin_log_entries_masked": 1,
        "sidecar_idempotency_records": 0, "sidecar_spool_items": 0,
    }
    assert LogEntry.objects.get().object_repr == "[erased]"  # staff's history stays, nameless
    assert Contact.objects.filter(pk=bystander.pk).exists() and bystander.messages.count() == 1
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "contact erased" in logged and not any(n in logged for n in NEEDLES)


def test_a_customer_known_only_by_lid_is_erased_by_that_id(tenant, sidecar):
    contact = Contact.objects.create(tenant=tenant, lid_jid=LID, name=NAME)
    Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, status=Status.RECEIVED,
                           body="hi")

    call_command("erase_contact", "acme", LID)

    assert tables_holding(NEEDLES) == []
    assert ErasureLog.objects.get().counts["messages_in"] == 1


@pytest.mark.parametrize(("tenant_slug", "customer_id", "error"), [
    ("nope", PHONE, "No tenant 'nope'"),
    ("acme", "5551234567", "Not a phone number or WhatsApp id"),
    ("acme", "+1555123456789012", "Not a phone number or WhatsApp id"),
    ("acme", "15551234567@g.us", "Not a phone number or WhatsApp id"),
    ("acme", "+15550000000", "has no contact with that number"),
    ("acme", "11111@lid", "has no contact with that number"),
])
def test_bad_input_gets_a_clear_error_and_erases_nothing(customer, bystander, tenant_slug, customer_id, error):
    before = row_counts()

    with pytest.raises(CommandError, match=error):
        call_command("erase_contact", tenant_slug, customer_id)

    assert row_counts() == before


def test_with_the_sidecar_down_nothing_is_erased_and_running_it_again_finishes(customer, settings, request):
    settings.SIDECAR_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    before = row_counts()

    with pytest.raises(CommandError, match="sidecar .* is not reachable.*nothing was erased.*again"):
        call_command("erase_contact", "acme", PHONE)

    assert row_counts() == before
    request.getfixturevalue("sidecar")  # the sidecar is back
    call_command("erase_contact", "acme", PHONE)
    assert tables_holding(NEEDLES) == []


def test_a_reply_being_sent_right_now_postpones_the_erasure(customer):
    reply = customer.messages.get(direction=Direction.OUTBOUND)
    Message.objects.filter(pk=reply.pk).update(status=Status.SENDING, lease_until=timezone.now() + timedelta(minutes=2))
    before = row_counts()

    with pytest.raises(CommandError, match="being sent right now; nothing was erased. Try again after"):
        call_command("erase_contact", "acme", PHONE)

    assert row_counts() == before


def test_staff_need_the_erase_permission_and_must_confirm(customer, bystander, sidecar, client):
    staff = User.objects.create_user("dora", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_contact", "change_contact"]))
    client.force_login(staff)
    url = "/admin/whatsapp/contact/"
    chosen = {"action": "erase_contacts", "_selected_action": [customer.pk]}

    page = client.get(url)
    assert b"erase_contacts" not in page.content
    client.post(url, chosen)
    assert Contact.objects.filter(pk=customer.pk).exists()

    staff.user_permissions.add(Permission.objects.get(codename="erase_contact"))
    confirm = client.post(url, chosen)
    assert confirm.status_code == 200 and b"Yes, erase" in confirm.content
    assert Contact.objects.filter(pk=customer.pk).exists()

    done = client.post(url, {**chosen, "post": "yes"}, follow=True)
    assert b"Erased contact \xe2\x80\xa64567 (acme), erasure #" in done.content
    assert not any(n.encode() in done.content for n in NEEDLES)
    assert not Contact.objects.filter(pk=customer.pk).exists()
    assert ErasureLog.objects.get().requested_by == "dora"
    assert tables_holding(NEEDLES) == []
    assert Contact.objects.filter(pk=bystander.pk).exists()
    assert files_holding(sidecar, NEEDLES) == []
    client.force_login(User.objects.create_superuser("root"))
    log_page = client.get("/admin/whatsapp/erasurelog/")
    assert b"dora" in log_page.content and not any(n.encode() in log_page.content for n in NEEDLES)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_after_erasure_the_customer_is_in_no_table_no_sidecar_file_and_no_redis_key(
    tenant, sandbox, live_django, lifecycle_worker, start_worker, redis_server, tmp_path
):
    from tests.support.sidecar import signed_sidecar_post

    tenant.baileys_enabled = True
    tenant.save()
    Rule.objects.create(tenant=tenant, pattern="hours", answer="We are open 8-18.")
    # The sidecar's webhooks go nowhere: what the customer writes next stays in its spool.
    lifecycle_worker(SIDECAR_WEBHOOK_BASE=f"http://127.0.0.1:{free_port()}")
    start_worker()
    connect("acme")
    data_dir = tmp_path / "sidecar-data"
    # The customer's first message reached Django (signed as the sidecar signs it) in a LID
    # chat and was answered through the sidecar (an idempotency record there).
    response = signed_sidecar_post(f"{live_django}/webhooks/baileys/acme/", {
        "id": "3A0FERASE1", "tenant": "acme", "from": PHONE[1:], "fromJid": LID,
        "fromAltJid": f"{PHONE[1:]}@s.whatsapp.net", "pushName": NAME, "timestamp": int(timezone.now().timestamp()),
        "type": "text", "text": f"opening hours? I am {NAME}, {PHONE}",
    })
    assert response.status_code == 200, response.text
    wait_for(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).exists(), 30,
             message="the reply sent through the sidecar")
    # Then they (and another customer) wrote again while Django could not be reached.
    sandbox.inbound("acme", **{"from": PHONE[1:], "lid": LID.split("@")[0], "text": "hello again", "pushName": NAME})
    sandbox.inbound("acme", **{"from": "15557654321", "text": "hi", "pushName": "Other"})
    wait_for(lambda: files_holding(data_dir, NEEDLES) and files_holding(data_dir, ["15557654321"]), 10,
             message="both messages in the sidecar's spool")
    assert tables_holding(NEEDLES)

    call_command("erase_contact", "acme", PHONE)

    assert tables_holding(NEEDLES) == []
    assert files_holding(data_dir, NEEDLES) == []
    assert redis_holding(redis_server.client(), NEEDLES) == []
    assert files_holding(data_dir, ["15557654321"])  # the other customer's message is still on its way
    counts = ErasureLog.objects.get().counts
    assert counts["sidecar_idempotency_records"] >= 1 and counts["sidecar_spool_items"] >= 1, counts
