"""Paging: the conversation list in pages of 50 (filters and search kept across pages), a
long thread shows its newest 50 messages and "load older" brings one more page each time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from whatsapp.inbox.models import ConversationEvent
from whatsapp.models import Contact, Direction, Message, Status

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = User.objects.create_user("sam", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="use_inbox"))
    client.force_login(user)
    return client


def test_the_list_comes_in_pages_newest_activity_first(staff_client, tenant):
    now = timezone.now()
    contacts = Contact.objects.bulk_create(
        Contact(tenant=tenant, phone=f"+1555000{n:04d}", name=f"C{n:03d}") for n in range(120)
    )
    Message.objects.bulk_create(
        Message(tenant=tenant, contact=c, direction=Direction.INBOUND, status=Status.ANSWERED, body="hi",
                created_at=now - timedelta(minutes=n))
        for n, c in enumerate(contacts)
    )

    pages = [staff_client.get("/admin/inbox/acme/", {"page": p}) for p in (1, 2, 3)]
    names = [[c.name for c in r.context["rows"]] for r in pages]
    assert [len(n) for n in names] == [50, 50, 20]
    assert names[0][:2] == ["C000", "C001"] and names[2][-1] == "C119"
    assert sum(names, []) == [f"C{n:03d}" for n in range(120)], "every conversation once, in order"
    assert "Page 1 of 3 (120 conversations)" in pages[0].content.decode()
    # A search keeps its words on the next page's link.
    searched = staff_client.get("/admin/inbox/acme/", {"q": "C0", "show": "bot_active"})
    assert len(searched.context["rows"]) == 50
    assert "?page=2&show=bot_active&q=C0" in searched.content.decode()
    assert staff_client.get("/admin/inbox/acme/", {"page": "junk"}).context["rows"][0].name == "C000"


def test_a_long_thread_shows_its_newest_page_and_loads_older_ones(staff_client, tenant):
    contact = Contact.objects.create(tenant=tenant, phone="+15550001111")
    start = timezone.now() - timedelta(hours=3)
    Message.objects.bulk_create(
        Message(tenant=tenant, contact=contact, direction=Direction.INBOUND, status=Status.ANSWERED,
                body=f"message {n}", created_at=start + timedelta(minutes=n))
        for n in range(120)
    )
    # An event among the oldest messages is shown only with their page.
    ConversationEvent.objects.create(contact=contact, kind=ConversationEvent.Kind.PAUSED, at=start + timedelta(seconds=30))
    url = f"/admin/inbox/acme/{contact.pk}/thread.json"

    def bodies(**params):
        data = staff_client.get(url, params).json()
        return [i["body"] for i in data["items"] if i["type"] == "in"], data

    newest, data = bodies()
    assert newest == [f"message {n}" for n in range(70, 120)] and data["has_older"]
    assert not [i for i in data["items"] if i["type"] == "event"]
    two, data = bodies(pages=2)
    assert two == [f"message {n}" for n in range(20, 120)] and data["has_older"]
    everything, data = bodies(pages=3)
    assert everything == [f"message {n}" for n in range(120)] and not data["has_older"]
    assert [i["type"] for i in data["items"]][:2] == ["in", "event"]
    # Nonsense or huge page counts are bounded.
    assert bodies(pages="-1")[0] == newest
    assert len(bodies(pages=10**6)[0]) == 120


def test_the_page_has_a_load_older_button(staff_client, tenant):
    contact = Contact.objects.create(tenant=tenant, phone="+15550001111")
    page = staff_client.get(f"/admin/inbox/acme/{contact.pk}/").content.decode()
    assert 'id="load-older"' in page and "?pages=" in page
