"""The inbox pages: who may open them, the list (newest first, unread counts, filters,
search), a conversation's thread as JSON, and the staff actions. Real Django and database;
sending is covered through real workers in test_inbox_pause."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from whatsapp.inbox import state
from whatsapp.inbox.models import Conversation, PauseReason
from whatsapp.models import Contact, DeadLetter, Direction, Message, Status

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    user = User.objects.create_user("sam", password="pw", is_staff=True, first_name="Sam", last_name="Lee")
    user.user_permissions.add(Permission.objects.get(codename="use_inbox"))
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def message(contact, body, direction=Direction.INBOUND, status=Status.RECEIVED, minutes_ago=0, **fields):
    return Message.objects.create(
        tenant=contact.tenant, contact=contact, direction=direction, status=status, body=body,
        created_at=timezone.now() - timedelta(minutes=minutes_ago), **fields,
    )


@pytest.fixture
def contacts(tenant):
    ana = Contact.objects.create(tenant=tenant, phone="+15550001111", name="Ana")
    bob = Contact.objects.create(tenant=tenant, phone="+15550002222", name="Bob")
    message(ana, "hi", minutes_ago=30)
    message(bob, "hello", minutes_ago=10)
    message(bob, "anyone?", minutes_ago=5)
    return ana, bob


def rows(response):
    return [c.name for c in response.context["rows"]]


def test_staff_without_the_inbox_permission_are_refused(client, tenant):
    user = User.objects.create_user("x", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/inbox/acme/").status_code == 403


def test_anonymous_users_are_sent_to_the_login(client, tenant):
    response = client.get("/admin/inbox/acme/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_list_shows_the_newest_activity_first_with_unread_counts(staff_client, contacts):
    response = staff_client.get("/admin/inbox/acme/")
    assert rows(response) == ["Bob", "Ana"]
    assert [c.unread for c in response.context["rows"]] == [2, 1]

    ana, bob = contacts
    staff_client.get(f"/admin/inbox/acme/{bob.pk}/")  # staff read Bob's conversation
    message(bob, "still there?")
    response = staff_client.get("/admin/inbox/acme/")
    assert [(c.name, c.unread) for c in response.context["rows"]] == [("Bob", 1), ("Ana", 1)]


def test_the_list_filters_and_searches(staff_client, contacts, staff):
    ana, bob = contacts
    state.pause(bob, PauseReason.HANDOFF, needs_human=True)
    reply = message(ana, "sorry", direction=Direction.OUTBOUND, status=Status.DEAD)
    DeadLetter.objects.create(message=reply, reason=DeadLetter.Reason.PERMANENT)

    assert rows(staff_client.get("/admin/inbox/acme/?show=needs_human")) == ["Bob"]
    assert rows(staff_client.get("/admin/inbox/acme/?show=paused")) == ["Bob"]
    assert rows(staff_client.get("/admin/inbox/acme/?show=bot_active")) == ["Ana"]
    assert rows(staff_client.get("/admin/inbox/acme/?show=dead_letter")) == ["Ana"]
    assert rows(staff_client.get("/admin/inbox/acme/?show=opted_out")) == []
    assert rows(staff_client.get("/admin/inbox/acme/?q=an")) == ["Ana"]
    assert rows(staff_client.get("/admin/inbox/acme/?q=2222")) == ["Bob"]


def test_the_thread_shows_every_kind_of_item_in_order(staff_client, tenant, staff):
    contact = Contact.objects.create(tenant=tenant, phone="+15550001111", name="Ana")
    question = message(contact, "price?", status=Status.ANSWERED, minutes_ago=10)
    message(contact, "It is 5 euros.", direction=Direction.OUTBOUND, status=Status.READ, minutes_ago=9,
            in_reply_to=question, engine="rules", provider="twilio")
    state.pause(contact, PauseReason.STAFF, by=staff)
    staff_reply = message(contact, "Sam here", direction=Direction.OUTBOUND, status=Status.DEAD, author=staff,
                          engine="staff")
    letter = DeadLetter.objects.create(message=staff_reply, reason=DeadLetter.Reason.PERMANENT)

    data = staff_client.get(f"/admin/inbox/acme/{contact.pk}/thread.json").json()

    summary = [(i["type"], i["body"], i.get("author"), i.get("ticks")) for i in data["items"]]
    assert summary == [
        ("in", "price?", None, None),
        ("out", "It is 5 euros.", "Bot (rules)", "read"),
        ("event", "Bot paused by Sam Lee: Staff took over", None, None),
        ("out", "Sam here", "Sam Lee", "failed"),
    ]
    assert data["items"][-1]["dead_letter"]["url"] == f"/admin/whatsapp/deadletter/{letter.pk}/change/"
    assert data["state"]["paused"] is True


def test_take_over_and_hand_back_from_the_page(staff_client, contacts, staff):
    ana, _ = contacts
    assert staff_client.post(f"/admin/inbox/acme/{ana.pk}/take-over/").status_code == 302
    conversation = Conversation.objects.get(contact=ana)
    assert conversation.bot_paused and conversation.paused_by == staff
    staff_client.post(f"/admin/inbox/acme/{ana.pk}/hand-back/")
    assert not Conversation.objects.get(contact=ana).bot_paused


def test_a_get_cannot_take_over(staff_client, contacts):
    ana, _ = contacts
    assert staff_client.get(f"/admin/inbox/acme/{ana.pk}/take-over/").status_code == 405
    assert not Conversation.objects.filter(contact=ana, bot_paused=True).exists()


def test_an_empty_reply_is_refused_and_nothing_is_stored(staff_client, contacts):
    ana, _ = contacts
    response = staff_client.post(f"/admin/inbox/acme/{ana.pk}/reply/", {"body": "  "}, HTTP_ACCEPT="application/json")
    assert response.status_code == 409 and response.json()["error"] == "Write a message first."
    assert not Message.objects.filter(direction=Direction.OUTBOUND).exists()


def test_a_closed_window_is_said_on_the_page(staff_client, tenant, contacts):
    ana, _ = contacts
    tenant.twilio_template_sid = "HX" + "1" * 32
    tenant.save()
    window = staff_client.get(f"/admin/inbox/acme/{ana.pk}/thread.json").json()["window"]
    assert window == {"applies": True, "open": False, "closes_at": None, "template_sid": "HX" + "1" * 32,
                      "templates": []}


def test_a_contact_of_another_tenant_is_not_found(staff_client, contacts):
    from whatsapp.models import Tenant

    other = Tenant.objects.create(slug="other", name="Other")
    stranger = Contact.objects.create(tenant=other, phone="+15559990000")
    assert staff_client.get(f"/admin/inbox/acme/{stranger.pk}/thread.json").status_code == 404


def test_the_admin_index_and_the_dashboard_lead_to_the_inbox(staff_client, contacts):
    ana, _ = contacts
    state.pause(ana, PauseReason.HANDOFF, needs_human=True)
    assert 'href="/admin/inbox/"' in staff_client.get("/admin/").content.decode()
    dashboard = staff_client.get("/admin/ops/").content.decode()
    assert 'id="ops-needs-human"><a href="/admin/inbox/">1</a>' in dashboard


def test_the_metrics_count_conversations_needing_a_human(client, contacts):
    ana, bob = contacts
    state.pause(ana, PauseReason.HANDOFF, needs_human=True)
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'whatsapp_conversations_needing_human{tenant="acme"} 1.0' in body


def test_staff_can_pause_the_bot_for_a_number_that_never_wrote(staff_client, tenant, staff):
    response = staff_client.post("/admin/inbox/acme/pause-number/", {"phone": "+1 555 000 3333"})
    contact = Contact.objects.get(phone="+15550003333")
    assert response["Location"] == f"/admin/inbox/acme/{contact.pk}/"
    assert Conversation.objects.get(contact=contact).bot_paused


def test_a_bad_number_to_pause_is_refused_and_nothing_is_stored(staff_client, tenant):
    response = staff_client.post("/admin/inbox/acme/pause-number/", {"phone": "hello"}, follow=True)
    assert "country code" in response.content.decode()
    assert not Contact.objects.exists()


def test_the_tenant_page_links_to_its_inbox(staff_client, tenant, staff):
    staff.is_superuser = True
    staff.save()
    page = staff_client.get(f"/admin/whatsapp/tenant/{tenant.pk}/change/").content.decode()
    assert 'href="/admin/inbox/acme/"' in page


def test_retention_keeps_an_opt_out_and_a_pause_after_the_messages_are_gone(tenant):
    from whatsapp.retention import purge

    old = timezone.now() - timedelta(days=400)
    quiet, paused, opted_out = (Contact.objects.create(tenant=tenant, phone=f"+1555000{n}000") for n in (1, 2, 3))
    state.pause(paused, PauseReason.STAFF)
    state.set_opted_out(opted_out, True)
    Contact.objects.update(created_at=old)

    purge()

    assert set(Contact.objects.values_list("pk", flat=True)) == {paused.pk, opted_out.pk}, "only the quiet one goes"
