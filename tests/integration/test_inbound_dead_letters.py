"""Inbound dead letters: a customer's message that was not answered within its deadline,
or one the webhook refused and the sidecar kept, reaches staff in the admin with what the
customer said, why, and an action that answers it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tests.fakes.base import FakeServer, JsonHandler
from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for
from whatsapp.inbound.dead_letters import file_unanswered
from whatsapp.inbound.rejected import RejectedInbox, collect
from whatsapp.models import Contact, DeadLetter, Direction, Message, Status
from whatsapp.tasks import reconcile_outbound

LIST_URL = "/admin/whatsapp/deadletter/"
PHONE = "+15551234567"


@pytest.fixture
def staff(client, db):
    user = User.objects.create_superuser("sam", password="pw-for-tests-only")
    client.force_login(user)
    return user


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_message_nobody_answers_in_time_becomes_a_dead_letter_and_answer_now_answers_it(
    client, tenant, twilio, start_worker, staff
):
    # Beat and the reconciler run; no worker takes the `ai` queue (it is down).
    start_worker(queues="default,send", beat=True, INBOUND_ANSWER_DEADLINE_SECONDS=2,
                 RECONCILE_INTERVAL_SECONDS=0.5, RECONCILE_GRACE_SECONDS=0.5)
    assert post_twilio(client, "/webhooks/twilio/acme/", twilio_form(Body="Do you deliver on Sundays?")).status_code == 200

    letter = wait_for(lambda: DeadLetter.objects.filter(kind="unanswered").first(), 20, message="the dead letter")
    assert letter.reason == DeadLetter.Reason.NOT_ANSWERED
    page = client.get(LIST_URL).content.decode()
    assert "Do you deliver on Sundays?" in page and "The bot did not answer in time." in page
    resolve = client.get(f"{LIST_URL}{letter.pk}/resolve/").content.decode()
    assert 'value="Answer now"' in resolve

    start_worker(queues="ai", concurrency=1)  # the ai worker is back
    client.post(f"{LIST_URL}{letter.pk}/resolve/", {"note": "ai worker was down", "answer": "1"})

    sent = wait_for(lambda: twilio.sent_to(PHONE), 20, message="the answer at Twilio")
    assert len(sent) == 1
    letter.refresh_from_db()
    assert (letter.resolution, letter.resolved_by, letter.note) == ("answered", staff, "ai worker was down")
    assert DeadLetter.objects.count() == 1


@pytest.mark.django_db
def test_an_unanswered_message_is_filed_once_however_often_the_reconciler_runs(tenant, settings):
    settings.INBOUND_ANSWER_DEADLINE_SECONDS = 60
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    old = timezone.now() - timedelta(minutes=2)
    Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, status=Status.RECEIVED,
                           body="hello?", created_at=old, provider="twilio", provider_message_id="SMold")
    Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, status=Status.RECEIVED,
                           body="still there?", provider="twilio", provider_message_id="SMnew")
    assert file_unanswered() == 1
    assert file_unanswered() == 0
    assert list(DeadLetter.objects.values_list("message__body", flat=True)) == ["hello?"]


@pytest.mark.django_db
def test_a_dead_letter_closes_itself_when_the_bot_answers_the_message_after_all(tenant, settings):
    settings.INBOUND_ANSWER_DEADLINE_SECONDS = 60
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    message = Message.objects.create(
        tenant=tenant, contact=contact, direction=Direction.INBOUND, status=Status.RECEIVED, body="hello?",
        created_at=timezone.now() - timedelta(minutes=2), provider="twilio", provider_message_id="SMold")
    assert reconcile_outbound()["inbound_dead_letters"] == 1
    Message.objects.filter(pk=message.pk).update(status=Status.ANSWERED)  # the ai worker came back
    assert reconcile_outbound()["inbound_dead_letters_closed"] == 1
    assert DeadLetter.objects.get().resolution == "answered"


# --- Refused inbound messages kept by the sidecar ------------------------------------------

class RejectedInboxServer(FakeServer):
    """The sidecar's refused-inbound API (whatsapp/inbound/rejected.py has the contract),
    until the sidecar branch lands it: GET lists, DELETE forgets (204, idempotent);
    `fail_deletes` answers that many DELETEs with a 500."""

    def __init__(self, token: str, items: list[dict]):
        self.token, self.items, self.fail_deletes, self.deletes = token, list(items), 0, 0
        super().__init__()

    def handler_class(self):
        fake = self

        class Handler(JsonHandler):
            def _authorized(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self.send_json(401, {"error": "unauthorized"})
                    return False
                return True

            def do_GET(self):
                if self._authorized():
                    with fake.lock:
                        self.send_json(200, {"items": list(fake.items)})

            def do_DELETE(self):
                if not self._authorized():
                    return
                item_id = self.path.rsplit("/", 1)[-1]
                with fake.lock:
                    fake.deletes += 1
                    if fake.fail_deletes > 0:
                        fake.fail_deletes -= 1
                        return self.send_json(500, {"error": "disk"})
                    fake.items = [i for i in fake.items if i["id"] != item_id]
                self.send_json(204, None, raw=b"")

        return Handler


def refused(item_id: str, tenant: str = "acme", http_status: int = 413, kind: str = "message", **payload) -> dict:
    body = {"id": f"wamid-{item_id}", "from": "15551234567", "text": "x" * 70000, "type": "text",
            "pushName": "Dana", **payload}
    return {"id": item_id, "tenant": tenant, "kind": kind, "httpStatus": http_status,
            "error": "request entity too large" if http_status == 413 else "refused",
            "rejectedAt": "2026-11-29T10:00:00.000Z", "payload": body}


@pytest.fixture
def inbox_server(settings):
    servers = []

    def start(items):
        server = RejectedInboxServer(settings.SIDECAR_TOKEN, items).start()
        servers.append(server)
        return server, RejectedInbox(base=server.address)

    yield start
    for server in servers:
        server.stop()


@pytest.mark.django_db
def test_the_collector_files_each_refused_message_once_even_if_the_delete_fails(tenant, inbox_server):
    server, inbox = inbox_server([refused("1712-a.json"), refused("1712-b.json", http_status=403, text="hi")])
    server.fail_deletes = 2  # both DELETEs fail: the items are listed again next time

    assert collect(inbox)["not_deleted"] == 2
    assert collect(inbox)["not_deleted"] == 0

    assert server.items == []
    letters = DeadLetter.objects.filter(kind="refused").order_by("source_id")
    assert [(dl.source_id, dl.reason) for dl in letters] == [
        ("1712-a.json", DeadLetter.Reason.TOO_LARGE), ("1712-b.json", DeadLetter.Reason.BAD_SIGNATURE)]
    assert letters[0].message is None and letters[0].tenant_slug == "acme"


@pytest.mark.django_db
def test_staff_answer_several_unanswered_messages_at_once_after_an_outage(
    client, tenant, staff, settings, django_capture_on_commit_callbacks
):
    settings.INBOUND_ANSWER_DEADLINE_SECONDS = 60
    long_ago = timezone.now() - timedelta(minutes=5)
    for n in range(2):
        contact = Contact.objects.create(tenant=tenant, phone=f"+1555000000{n}")
        Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, status=Status.RECEIVED,
                               body=f"question {n}", created_at=long_ago, provider="twilio",
                               provider_message_id=f"SM{n}")
    assert file_unanswered() == 2
    ids = list(DeadLetter.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(LIST_URL, {"action": "answer_selected", "_selected_action": ids})
    assert len(callbacks) == 2
    assert set(DeadLetter.objects.values_list("resolution", flat=True)) == {"answered"}


@pytest.mark.django_db
def test_a_refused_receipt_is_dropped_not_filed(tenant, inbox_server):
    server, inbox = inbox_server([refused("r.json", kind="status", http_status=403)])
    assert collect(inbox) == {"filed": 0, "receipts_dropped": 1, "not_deleted": 0}
    assert not DeadLetter.objects.exists() and server.items == []


@pytest.mark.django_db
def test_a_message_refused_for_a_renamed_tenant_is_stored_and_answered_once_staff_fix_the_slug(
    client, tenant, staff, inbox_server, django_capture_on_commit_callbacks
):
    tenant.slug = "acme-bakery"  # renamed while its session still posted to /acme/
    tenant.save()
    _server, inbox = inbox_server([refused("404.json", http_status=404, text="Is the shop open today?")])
    collect(inbox)
    letter = DeadLetter.objects.get()
    assert letter.reason == DeadLetter.Reason.UNKNOWN_TENANT
    page = client.get(LIST_URL).content.decode()
    assert "Is the shop open today?" in page and "no such tenant now" in page
    detail = client.get(f"{LIST_URL}{letter.pk}/change/").content.decode()
    assert "Store and answer / discard" in detail and "Give the tenant this slug again" in detail

    client.post(f"{LIST_URL}{letter.pk}/resolve/", {"store": "1"})
    letter.refresh_from_db()
    assert letter.resolved_at is None  # no tenant "acme": nothing stored

    tenant.slug = "acme"
    tenant.save()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(f"{LIST_URL}{letter.pk}/resolve/", {"store": "1"})
        client.post(f"{LIST_URL}{letter.pk}/resolve/", {"store": "1"})  # a double click
    letter.refresh_from_db()
    assert letter.resolution == "stored" and letter.message.body == "Is the shop open today?"
    assert letter.message.direction == Direction.INBOUND and letter.message.contact.name == "Dana"
    assert len(callbacks) == 1  # handed to the bot once
    assert Message.objects.count() == 1


