"""Staff review dead letters in the admin: see how many are open, the full attempt
timeline, and requeue (safe to click twice), edit-and-requeue or discard them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from tests.delivery_helpers import drive, make_reply
from whatsapp.models import DeadLetter, Status

pytestmark = pytest.mark.django_db

PHONE = "+15551234567"
LIST_URL = "/admin/whatsapp/deadletter/"


@pytest.fixture
def dead(tenant, twilio, redis_server, settings):
    """A reply dead-lettered because Twilio called the number invalid."""
    twilio.faults.invalid_numbers = {PHONE}
    message = drive(make_reply(tenant, body="Your order is ready."))
    twilio.faults.invalid_numbers = set()
    assert message.status == Status.DEAD
    return DeadLetter.objects.get(message=message)


@pytest.fixture
def staff(client):
    user = User.objects.create_user("sam", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_deadletter"),
        Permission.objects.get(codename="change_deadletter"),
        Permission.objects.get(codename="resolve_deadletter"),
    )
    client.force_login(user)
    return user


def deliver_requeued(letter: DeadLetter):
    return drive(letter.message)


def test_the_list_shows_how_many_dead_letters_are_open(client, staff, dead):
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert "<strong>1</strong> open dead letter" in response.content.decode()


def test_the_admin_index_shows_the_open_dead_letters_at_a_glance(client, staff, dead):
    page = client.get("/admin/").content.decode()
    assert "<strong>1</strong>\n      open dead letter" in page


def test_the_detail_page_shows_the_attempt_timeline(client, staff, dead):
    page = client.get(f"{LIST_URL}{dead.pk}/change/").content.decode()
    assert "Attempt timeline" in page
    assert "permanent" in page and "21211" in page


def test_requeue_sends_a_fresh_delivery_with_the_same_idempotency_key_once(
    client, staff, dead, twilio, django_capture_on_commit_callbacks
):
    key = dead.message.idempotency_key
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for _ in range(2):  # a double click
            client.post(LIST_URL, {"action": "requeue_selected", "_selected_action": [dead.pk]})
    assert len(callbacks) == 1
    dead.refresh_from_db()
    assert dead.resolution == "requeued" and dead.resolved_by == staff
    message = deliver_requeued(dead)
    assert message.status == Status.SENT
    assert message.idempotency_key == key
    assert [m["body"] for m in twilio.sent_to(PHONE)] == ["Your order is ready."]


def test_edit_and_requeue_sends_the_corrected_text(client, staff, dead, twilio):
    response = client.post(f"{LIST_URL}{dead.pk}/resolve/", {"body": "Your order is ready for pickup.", "requeue": "1"})
    assert response.status_code == 302
    message = deliver_requeued(dead)
    assert message.status == Status.SENT
    assert [m["body"] for m in twilio.sent_to(PHONE)] == ["Your order is ready for pickup."]


def test_discard_keeps_a_note_and_sends_nothing(client, staff, dead, twilio):
    client.post(f"{LIST_URL}{dead.pk}/resolve/", {"body": "", "note": "customer blocked us", "discard": "1", "confirm_discard": "on"})
    dead.refresh_from_db()
    assert (dead.resolution, dead.note) == ("discarded", "customer blocked us")
    dead.message.refresh_from_db()
    assert dead.message.status == Status.DISCARDED
    assert twilio.sent_to(PHONE) == []


def test_staff_without_the_permission_cannot_requeue_or_discard(client, dead):
    user = User.objects.create_user("viewer", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    client.force_login(user)
    client.post(LIST_URL, {"action": "requeue_selected", "_selected_action": [dead.pk]})
    client.post(f"{LIST_URL}{dead.pk}/resolve/", {"note": "x", "discard": "1", "confirm_discard": "on"})
    dead.refresh_from_db()
    assert dead.resolved_at is None


def test_anonymous_users_are_sent_to_the_login_page(client, dead):
    response = client.get(LIST_URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_filters_by_reason_and_search_by_text(client, staff, dead):
    assert "Your order is ready" in client.get(f"{LIST_URL}{dead.pk}/change/").content.decode()
    assert client.get(LIST_URL, {"reason": "permanent"}).context["cl"].result_count == 1
    assert client.get(LIST_URL, {"reason": "no_template"}).context["cl"].result_count == 0
    assert client.get(LIST_URL, {"q": "order is ready"}).context["cl"].result_count == 1
