"""Messages and delivery attempts are records, not forms: in the admin nobody, superusers
included, can add one, edit one or delete one. Every change of delivery state goes through
the actions that check permissions and transitions (the dead-letter actions)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.forms.models import model_to_dict
from django.utils import timezone

from tests.support.delivery import make_reply
from whatsapp.models import DeliveryAttempt, Message, Outcome, Status

pytestmark = pytest.mark.django_db

MESSAGES = "/admin/whatsapp/message/"
ATTEMPTS = "/admin/whatsapp/deliveryattempt/"


@pytest.fixture
def editor(client):
    """Staff with the plain model permissions to view and change messages and attempts."""
    user = User.objects.create_user("eve", password="pw-for-tests-only", is_staff=True)
    for codename in ("view_message", "change_message", "add_message", "delete_message",
                     "view_deliveryattempt", "change_deliveryattempt", "add_deliveryattempt",
                     "delete_deliveryattempt"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


@pytest.fixture
def sent_reply(tenant):
    reply = make_reply(tenant, body="We open at 8.")
    Message.objects.filter(pk=reply.pk).update(status=Status.SENT, provider="twilio", provider_message_id="SM1",
                                                sent_at=timezone.now())
    reply.refresh_from_db()
    return reply


@pytest.fixture
def ambiguous_attempt(sent_reply):
    return DeliveryAttempt.objects.create(message=sent_reply, provider="twilio", outcome=Outcome.AMBIGUOUS,
                                          error="read timeout after the request left")


def change_form_data(obj, **changes) -> dict:
    """What the admin's change form would post for obj, with some values changed: every
    field of the model (date-times split as the admin's widget splits them) plus an empty
    formset for the attempts inline of a message."""
    data = {}
    for name, value in {**model_to_dict(obj), **changes}.items():
        if value is None:
            continue
        if hasattr(value, "strftime"):
            data[f"{name}_0"], data[f"{name}_1"] = value.strftime("%Y-%m-%d"), value.strftime("%H:%M:%S")
        elif isinstance(value, (dict, list)):
            continue
        else:
            data[name] = value
    if isinstance(obj, Message):
        data.update({"attempts-TOTAL_FORMS": 0, "attempts-INITIAL_FORMS": 0, "attempts-MIN_NUM_FORMS": 0,
                     "attempts-MAX_NUM_FORMS": 1000})
    data["_save"] = "Save"
    return data


def test_a_user_with_change_permission_cannot_make_a_sent_reply_queued_again(editor, sent_reply):
    response = editor.post(f"{MESSAGES}{sent_reply.pk}/change/", change_form_data(sent_reply, status=Status.QUEUED))

    assert response.status_code == 403
    sent_reply.refresh_from_db()
    assert sent_reply.status == Status.SENT


def test_a_user_with_change_permission_cannot_rewrite_a_reply_or_its_provider_id(editor, sent_reply):
    data = change_form_data(sent_reply, body="Something the bot never said", provider_message_id="SM-forged",
                            direction="in")

    assert editor.post(f"{MESSAGES}{sent_reply.pk}/change/", data).status_code == 403

    sent_reply.refresh_from_db()
    assert (sent_reply.body, sent_reply.provider_message_id, sent_reply.direction) == ("We open at 8.", "SM1", "out")


def test_a_user_with_change_permission_cannot_make_an_ambiguous_attempt_transient(editor, ambiguous_attempt):
    data = change_form_data(ambiguous_attempt, outcome=Outcome.TRANSIENT)

    assert editor.post(f"{ATTEMPTS}{ambiguous_attempt.pk}/change/", data).status_code == 403

    ambiguous_attempt.refresh_from_db()
    assert ambiguous_attempt.outcome == Outcome.AMBIGUOUS


def test_a_superuser_cannot_change_the_delivery_state_in_a_form_either(admin_client, sent_reply, ambiguous_attempt):
    message_post = admin_client.post(f"{MESSAGES}{sent_reply.pk}/change/",
                                     change_form_data(sent_reply, status=Status.QUEUED))
    attempt_post = admin_client.post(f"{ATTEMPTS}{ambiguous_attempt.pk}/change/",
                                     change_form_data(ambiguous_attempt, outcome=Outcome.TRANSIENT))

    assert (message_post.status_code, attempt_post.status_code) == (403, 403)
    sent_reply.refresh_from_db()
    ambiguous_attempt.refresh_from_db()
    assert (sent_reply.status, ambiguous_attempt.outcome) == (Status.SENT, Outcome.AMBIGUOUS)


@pytest.mark.parametrize("base", [MESSAGES, ATTEMPTS])
def test_nobody_adds_messages_or_attempts_in_the_admin(editor, admin_client, base):
    assert editor.get(f"{base}add/").status_code == 403
    assert admin_client.get(f"{base}add/").status_code == 403
    assert f'href="{base}add/"' not in admin_client.get(base).content.decode()


def test_nobody_deletes_history_in_the_admin(editor, admin_client, sent_reply, ambiguous_attempt):
    for client in (editor, admin_client):
        assert client.post(f"{MESSAGES}{sent_reply.pk}/delete/", {"post": "yes"}).status_code == 403
        assert client.post(f"{ATTEMPTS}{ambiguous_attempt.pk}/delete/", {"post": "yes"}).status_code == 403
        bulk = client.post(MESSAGES, {"action": "delete_selected", "_selected_action": [sent_reply.pk],
                                      "post": "yes"})
        assert bulk.status_code in (200, 302)
    assert Message.objects.filter(pk=sent_reply.pk).exists()
    assert DeliveryAttempt.objects.filter(pk=ambiguous_attempt.pk).exists()


def test_the_message_page_is_a_record_to_read_with_no_save_or_delete_button(admin_client, sent_reply,
                                                                             ambiguous_attempt):
    response = admin_client.get(f"{MESSAGES}{sent_reply.pk}/change/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "We open at 8." in page and "Sent (accepted by provider)" in page
    assert "Outcome unknown" in page  # the attempt, in the timeline inline
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    assert "deletelink" not in page
    assert '<textarea name="body"' not in page and '<select name="status"' not in page
