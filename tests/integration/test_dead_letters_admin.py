"""Staff review dead letters in the admin: see how many are open, the full attempt
timeline, and requeue (safe to click twice), edit-and-requeue or discard them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from tests.support.delivery import drive, make_reply
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


def test_requeue_sends_one_fresh_delivery_with_a_new_key_generation_even_when_clicked_twice(
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
    assert message.idempotency_key == key  # the same message: receipts still find it
    assert message.key_generation == 1
    assert message.attempts.get(outcome="accepted").key_generation == 1
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


def test_the_list_shows_the_customers_question_and_the_reason_in_words_with_the_fix(client, staff, dead):
    page = client.get(LIST_URL).content.decode()
    assert "When do you close?" in page
    assert "The number is not on WhatsApp" in page
    assert "Check the number with the customer" in page


def test_the_detail_page_is_a_record_without_save_or_delete_buttons(client, staff, dead):
    page = client.get(f"{LIST_URL}{dead.pk}/change/").content.decode()
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    assert "/delete/" not in page
    assert "Edit and requeue / discard" in page
    assert client.post(f"{LIST_URL}{dead.pk}/delete/", {"post": "yes"}).status_code == 403
    assert DeadLetter.objects.filter(pk=dead.pk).exists()
    actions = client.get(LIST_URL).context["action_form"].fields["action"].choices
    assert "delete_selected" not in [name for name, _label in actions]


def test_discard_without_ticking_the_confirmation_does_nothing(client, staff, dead):
    client.post(f"{LIST_URL}{dead.pk}/resolve/", {"note": "oops", "discard": "1"})
    dead.refresh_from_db()
    assert dead.resolved_at is None
    page = client.get(f"{LIST_URL}{dead.pk}/resolve/").content.decode()
    assert 'class="discard"' in page and "the customer gets no answer" in page
    assert "The number is not on WhatsApp" in page and "When do you close?" in page


def test_bulk_discard_asks_before_it_discards(client, staff, dead):
    response = client.post(LIST_URL, {"action": "discard_selected", "_selected_action": [dead.pk]})
    assert "Discard 1 dead letter?" in response.content.decode()
    dead.refresh_from_db()
    assert dead.resolved_at is None
    client.post(LIST_URL, {"action": "discard_selected", "_selected_action": [dead.pk], "confirm_discard": "yes"})
    dead.refresh_from_db()
    assert dead.resolution == "discarded"


def test_a_dead_letter_links_to_the_one_its_requeue_produced(client, staff, dead, twilio):
    twilio.faults.invalid_numbers = {PHONE}  # still invalid: the requeue dies again
    client.post(LIST_URL, {"action": "requeue_selected", "_selected_action": [dead.pk]})
    deliver_requeued(dead)
    second = DeadLetter.objects.exclude(pk=dead.pk).get()
    assert second.requeued_from == dead
    page = client.get(LIST_URL).content.decode()
    assert f'requeued as <a href="{LIST_URL}{second.pk}/change/">#{second.pk}</a>' in page
    assert f'from <a href="{LIST_URL}{dead.pk}/change/">#{dead.pk}</a>' in page


def test_edit_and_requeue_after_part_one_of_two_was_sent_sends_only_the_rest(client, staff, tenant, twilio, settings):
    settings.TWILIO_MAX_BODY = 40
    settings.SEND_RETRY_MAX = 2
    first, second = "Your order is ready at the front desk.", "Pickup closes at six tonight."
    twilio.faults.errors = [None, (503, 20503), (503, 20503)]  # part 1 accepted, part 2 fails until exhausted
    message = drive(make_reply(tenant, body=f"{first} {second}"))
    assert (message.status, message.parts_sent) == (Status.DEAD, 1)
    letter = DeadLetter.objects.get(message=message)

    page = client.get(f"{LIST_URL}{letter.pk}/resolve/")
    assert page.context["sent"] == first
    unsent = page.context["form"].initial["body"]
    client.post(f"{LIST_URL}{letter.pk}/resolve/",
                {"body": unsent.replace("six", "seven"), "note": "we close later today", "requeue": "1"})
    message = drive(message)

    assert message.status == Status.SENT
    assert [m["body"] for m in twilio.sent_to(PHONE)] == [first, "Pickup closes at seven tonight."]
    assert message.body == f"{first}\nPickup closes at seven tonight."
    letter.refresh_from_db()
    assert letter.original_body == f"{first} {second}"
    assert letter.edited_body == "Pickup closes at seven tonight."
    assert (letter.note, letter.resolved_by) == ("we close later today", staff)
