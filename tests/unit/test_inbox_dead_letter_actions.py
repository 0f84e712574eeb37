"""A dead letter's actions on the conversation page (requeue, answer now, discard), through
the same code paths as the dead-letter admin: buttons only for staff allowed to resolve
dead letters, POST with CSRF, the dead letter of another conversation out of reach."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from whatsapp.models import Contact, DeadLetter, Direction, Message, Status

pytestmark = pytest.mark.django_db


def staff_user(*codenames: str) -> User:
    user = User.objects.create_user("sam", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["use_inbox", *codenames]))
    return user


@pytest.fixture
def resolver_client(client):
    client.force_login(staff_user("resolve_deadletter"))
    return client


@pytest.fixture
def contact(tenant):
    return Contact.objects.create(tenant=tenant, phone="+15550001111", name="Ana")


def dead_reply(contact) -> DeadLetter:
    question = Message.objects.create(tenant=contact.tenant, contact=contact, direction=Direction.INBOUND,
                                      status=Status.ANSWERED, body="cake?")
    reply = Message.objects.create(tenant=contact.tenant, contact=contact, direction=Direction.OUTBOUND,
                                   status=Status.DEAD, body="Yes, chocolate.", in_reply_to=question)
    return DeadLetter.objects.create(message=reply, kind=DeadLetter.Kind.OUTBOUND, reason=DeadLetter.Reason.EXHAUSTED,
                                     last_error="provider down")


def unanswered(contact) -> DeadLetter:
    question = Message.objects.create(tenant=contact.tenant, contact=contact, direction=Direction.INBOUND,
                                      status=Status.RECEIVED, body="open today?")
    return DeadLetter.objects.create(message=question, kind=DeadLetter.Kind.UNANSWERED,
                                     reason=DeadLetter.Reason.NOT_ANSWERED)


def thread_letters(client, contact) -> list[dict]:
    data = client.get(f"/admin/inbox/acme/{contact.pk}/thread.json").json()
    return [i["dead_letter"] for i in data["items"] if "dead_letter" in i]


def url(contact, letter) -> str:
    return f"/admin/inbox/acme/{contact.pk}/dead-letters/{letter.pk}/"


def test_the_thread_offers_each_dead_letter_its_own_actions(resolver_client, contact):
    dead_reply(contact)
    unanswered(contact)
    letters = thread_letters(resolver_client, contact)
    assert [[a["name"] for a in dl["actions"]] for dl in letters] == [["requeue", "discard"], ["answer", "discard"]]
    assert all(dl["action_url"].endswith("/") for dl in letters)


def test_requeue_from_the_thread_sends_the_reply_again(resolver_client, contact, django_capture_on_commit_callbacks):
    letter = dead_reply(contact)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = resolver_client.post(url(contact, letter), {"action": "requeue"}, HTTP_ACCEPT="application/json")
    assert response.json() == {"ok": True, "error": ""}
    letter.refresh_from_db()
    assert letter.resolution == DeadLetter.Resolution.REQUEUED and letter.note == "from the inbox"
    assert letter.message.status == Status.QUEUED
    assert len(callbacks) == 1, "the delivery is enqueued"
    assert thread_letters(resolver_client, contact) == [], "resolved: no longer shown as dead"
    # A second click does nothing.
    again = resolver_client.post(url(contact, letter), {"action": "requeue"}, HTTP_ACCEPT="application/json")
    assert again.status_code == 409


def test_answer_now_from_the_thread_runs_the_bot_again(resolver_client, contact, django_capture_on_commit_callbacks):
    letter = unanswered(contact)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = resolver_client.post(url(contact, letter), {"action": "answer"})
    assert response.status_code == 302
    letter.refresh_from_db()
    assert letter.resolution == DeadLetter.Resolution.ANSWERED
    assert len(callbacks) == 1


def test_discard_needs_its_confirmation(resolver_client, contact):
    letter = dead_reply(contact)
    refused = resolver_client.post(url(contact, letter), {"action": "discard"}, HTTP_ACCEPT="application/json")
    assert refused.status_code == 400
    letter.refresh_from_db()
    assert letter.resolved_at is None

    done = resolver_client.post(url(contact, letter), {"action": "discard", "confirm_discard": "yes"},
                                HTTP_ACCEPT="application/json")
    assert done.json()["ok"]
    letter.refresh_from_db()
    assert letter.resolution == DeadLetter.Resolution.DISCARDED
    assert letter.message.status == Status.DISCARDED


def test_an_action_that_does_not_fit_the_dead_letter_does_nothing(resolver_client, contact):
    letter = dead_reply(contact)
    response = resolver_client.post(url(contact, letter), {"action": "answer"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 409
    letter.refresh_from_db()
    assert letter.resolved_at is None


def test_staff_who_may_not_resolve_dead_letters_see_no_buttons_and_are_refused(client, contact):
    client.force_login(staff_user())
    letter = dead_reply(contact)
    assert [dl["actions"] for dl in thread_letters(client, contact)] == [[]]
    response = client.post(url(contact, letter), {"action": "requeue"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 403
    letter.refresh_from_db()
    assert letter.resolved_at is None


def test_a_dead_letter_of_another_conversation_is_out_of_reach(resolver_client, tenant, contact):
    other = Contact.objects.create(tenant=tenant, phone="+15550002222")
    letter = dead_reply(other)
    assert resolver_client.post(url(contact, letter), {"action": "requeue"}).status_code == 404
    assert resolver_client.get(url(other, letter)).status_code == 405, "POST only"


def test_the_actions_need_the_csrf_token(contact):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(staff_user("resolve_deadletter"))
    letter = dead_reply(contact)
    assert csrf_client.post(url(contact, letter), {"action": "requeue"}).status_code == 403
    letter.refresh_from_db()
    assert letter.resolved_at is None
