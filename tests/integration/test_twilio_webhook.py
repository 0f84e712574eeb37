"""The Twilio inbound webhook: signed exactly as Twilio signs, deduplicated, and every
bad input refused with a clear 4xx and nothing stored or enqueued."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.support.twilio_webhooks import post_twilio, twilio_form, twilio_signature
from whatsapp.models import Contact, Direction, Message, Status

PATH = "/webhooks/twilio/acme/"


@pytest.fixture
def broker(redis_server):
    """The real broker this process enqueues to (no worker consumes in these tests)."""
    return redis_server.client()


def queued_tasks(broker) -> int:
    return sum(broker.llen(q) for q in ("ai", "send", "default"))


def test_it_accepts_a_signed_message_answers_empty_twiml_and_enqueues_one_reply(
    client, tenant, broker, django_capture_on_commit_callbacks
):
    form = twilio_form(Body="Are you open on Sunday?")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_twilio(client, PATH, form)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert b"<Response" in response.content
    message = Message.objects.get()
    assert (message.direction, message.status, message.body) == (Direction.INBOUND, Status.RECEIVED, form["Body"])
    assert message.contact.phone == "+15551234567"
    assert message.contact.name == "Dana"
    assert message.contact.last_twilio_inbound_at is not None
    assert len(callbacks) == 1
    assert broker.llen("ai") == 1


def test_a_redelivered_webhook_is_acknowledged_and_does_nothing_more(
    client, tenant, broker, django_capture_on_commit_callbacks
):
    form = twilio_form()
    with django_capture_on_commit_callbacks(execute=True):
        first = post_twilio(client, PATH, form)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = post_twilio(client, PATH, form)
    assert first.status_code == second.status_code == 200
    assert Message.objects.count() == 1
    assert callbacks == []
    assert broker.llen("ai") == 1


def test_it_verifies_the_public_url_behind_a_tls_proxy(client, tenant, settings, broker):
    settings.PUBLIC_BASE_URL = "https://bot.example.com"
    form = twilio_form()
    # Twilio signed the public https URL; Django sees http://testserver.
    ok = post_twilio(client, PATH, form, signed_url=f"https://bot.example.com{PATH}")
    assert ok.status_code == 200
    wrong = post_twilio(client, PATH, twilio_form(), signed_url=f"http://testserver{PATH}")
    assert wrong.status_code == 403


def test_it_trusts_forwarded_headers_only_when_told_to(client, tenant, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.USE_X_FORWARDED_HOST = True
    form = twilio_form()
    response = post_twilio(
        client, PATH, form, signed_url=f"https://bot.example.com{PATH}",
        HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="bot.example.com",
    )
    assert response.status_code == 200


def _assert_refused(response, status: int, error: str, broker) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"] == error
    assert response.json()["detail"]
    assert Message.objects.count() == 0
    assert queued_tasks(broker) == 0


def test_a_wrong_signature_is_refused(client, tenant, broker):
    form = twilio_form()
    response = client.post(
        PATH, data=urlencode(form), content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(f"http://testserver{PATH}", form, token="someone-elses-token"),
    )
    _assert_refused(response, 403, "bad_signature", broker)


def test_a_missing_signature_is_refused(client, tenant, broker):
    response = client.post(PATH, data=urlencode(twilio_form()), content_type="application/x-www-form-urlencoded")
    _assert_refused(response, 403, "bad_signature", broker)


def test_a_tampered_body_is_refused(client, tenant, broker):
    form = twilio_form(Body="hi")
    signature = twilio_signature(f"http://testserver{PATH}", form)
    form["Body"] = "send me everything"
    response = client.post(
        PATH, data=urlencode(form), content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=signature
    )
    _assert_refused(response, 403, "bad_signature", broker)


def test_an_unknown_tenant_is_refused(client, tenant, broker):
    path = "/webhooks/twilio/nobody/"
    _assert_refused(post_twilio(client, path, twilio_form()), 404, "unknown_tenant", broker)


@pytest.mark.parametrize("missing", ["MessageSid", "From", "Body"])
def test_missing_fields_are_refused(client, tenant, broker, missing):
    form = twilio_form()
    form[missing] = ""
    _assert_refused(post_twilio(client, PATH, form), 400, "missing_fields", broker)


def test_an_oversized_body_is_refused(client, tenant, broker, settings):
    form = twilio_form(Body="x" * (settings.WEBHOOK_MAX_BYTES + 1))
    _assert_refused(post_twilio(client, PATH, form), 413, "too_large", broker)


def test_a_wrong_content_type_is_refused(client, tenant, broker):
    response = client.post(PATH, data={"Body": "hi"}, content_type="application/json",
                           HTTP_X_TWILIO_SIGNATURE="x")
    _assert_refused(response, 415, "unsupported_media_type", broker)


def test_a_media_message_is_stored_with_its_type(client, tenant, broker, django_capture_on_commit_callbacks):
    form = twilio_form(Body="", NumMedia="1", MediaContentType0="image/jpeg", MediaUrl0="https://example.com/x.jpg")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_twilio(client, PATH, form)
    assert response.status_code == 200
    assert Message.objects.get().media_type == "image"


def test_a_second_message_reuses_the_contact(client, tenant, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_twilio(client, PATH, twilio_form())
        post_twilio(client, PATH, twilio_form())
    assert Contact.objects.count() == 1
    assert Message.objects.count() == 2


def test_more_form_fields_than_django_parses_is_a_clear_400_and_stores_nothing(client, tenant, broker, settings):
    form = twilio_form(Body="hello", **{f"Extra{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)})
    response = post_twilio(client, PATH, form)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert Message.objects.count() == 0
