"""Inbound media from Twilio, through a real worker: the webhook only records the
attachment; the media task fetches it with the account's credentials (the fake Twilio
protects media and redirects to a short-lived storage URL), stores it through Django's
storage API, and only then is the message answered. Bad media is answered too, and
staff see why it failed."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from tests.support.media import JPEG, PATH, media_settings, replies, send_media
from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for
from whatsapp.media.models import MediaFile
from whatsapp.media.tasks import twilio_auth_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NON_TEXT = "Thanks! We can only read text messages here; could you write your question in words?"


def settled(message) -> MediaFile:
    return wait_for(lambda: MediaFile.objects.filter(message=message).exclude(state="pending").first(), 20,
                    message="the media to be settled")


def test_a_photo_is_fetched_with_the_account_credentials_and_stored(client, tenant, twilio, start_worker, settings,
                                                                    tmp_path):
    start_worker(**media_settings(settings, tmp_path))

    message = send_media(client, twilio, JPEG, "image/jpeg")

    media = settled(message)
    assert (media.state, media.content_type, media.size) == ("stored", "image/jpeg", len(JPEG))
    with default_storage.open(media.file.name, "rb") as handle:
        assert handle.read() == JPEG
    api, storage = twilio.media_requests
    assert (api["status"], api["had_auth"]) == (307, True)
    assert (storage["status"], storage["had_auth"]) == (200, False), "the credentials stay with Twilio"
    sent = wait_for(lambda: twilio.sent_to("+15551234567"), 20, message="the answer")
    assert sent[0]["body"] == NON_TEXT


def test_the_webhook_records_the_attachment_and_downloads_nothing(client, tenant, twilio, redis_server, settings,
                                                                  tmp_path):
    media_settings(settings, tmp_path)

    message = send_media(client, twilio, JPEG, "image/jpeg", body="is this cake gluten-free?")

    media = MediaFile.objects.get(message=message)
    assert (media.state, media.content_type) == ("pending", "image/jpeg")
    assert "/Media/ME" in media.source_url
    assert message.body == "is this cake gluten-free?" and message.media_type == "image"
    assert twilio.media_requests == []


def test_an_oversize_file_is_not_stored_and_the_customer_still_gets_an_answer(client, tenant, twilio, start_worker,
                                                                             settings, tmp_path):
    start_worker(**media_settings(settings, tmp_path, MEDIA_MAX_BYTES=1000))

    message = send_media(client, twilio, JPEG * 3, "image/jpeg")

    media = settled(message)
    assert (media.state, media.failure, media.file.name) == ("failed", "too_large", "")
    assert "MEDIA_MAX_BYTES is 1000" in media.error
    assert wait_for(replies, 20, message="the answer")[0].body == NON_TEXT


def test_a_type_not_accepted_is_not_even_downloaded(client, tenant, twilio, start_worker, settings, tmp_path):
    start_worker(**media_settings(settings, tmp_path))

    message = send_media(client, twilio, b"MZ\x90\x00", "application/x-msdownload")

    media = settled(message)
    assert (media.state, media.failure) == ("failed", "wrong_type")
    assert twilio.media_requests == []
    assert wait_for(replies, 20, message="the answer")[0].body == NON_TEXT


def test_an_expired_storage_url_is_fetched_again_through_a_fresh_redirect(client, tenant, twilio, start_worker,
                                                                          settings, tmp_path):
    twilio.faults.media_expired_next = 1
    start_worker(**media_settings(settings, tmp_path))

    message = send_media(client, twilio, JPEG, "image/jpeg")

    media = settled(message)
    assert (media.state, media.attempts) == ("stored", 1)
    assert [r["status"] for r in twilio.media_requests] == [307, 403, 307, 200]


def test_a_download_that_keeps_failing_is_given_up_visibly_and_the_message_answered(client, tenant, twilio,
                                                                                   start_worker, settings, tmp_path):
    twilio.faults.media_expired_next = -1
    start_worker(**media_settings(settings, tmp_path, MEDIA_FETCH_RETRIES=2))

    message = send_media(client, twilio, JPEG, "image/jpeg")

    media = wait_for(lambda: MediaFile.objects.filter(message=message, state="failed").first(), 30,
                     message="the media to fail")
    assert media.failure == "download_failed"
    assert "HTTP 403" in media.error and "after 3 attempts" in media.error
    assert wait_for(replies, 20, message="the answer")[0].body == NON_TEXT


def test_a_download_that_drips_is_cut_at_the_time_limit(client, tenant, twilio, start_worker, settings, tmp_path):
    twilio.faults.media_drip_seconds = 0.2  # never silent long enough for a read timeout
    start_worker(**media_settings(settings, tmp_path, MEDIA_FETCH_TIMEOUT=2, MEDIA_FETCH_RETRIES=0))

    message = send_media(client, twilio, JPEG, "image/jpeg")

    media = wait_for(lambda: MediaFile.objects.filter(message=message, state="failed").first(), 20,
                     message="the download to be given up")
    assert media.failure == "download_failed" and "longer than 2s" in media.error
    assert wait_for(replies, 20, message="the answer")[0].body == NON_TEXT


def test_every_attachment_of_a_message_is_stored_before_it_is_answered(client, tenant, twilio, start_worker,
                                                                       settings, tmp_path):
    start_worker(**media_settings(settings, tmp_path))
    form = twilio_form(Body="the cake and the invoice", NumMedia="2",
                       MediaUrl0=twilio.add_media(JPEG, "image/jpeg"), MediaContentType0="image/jpeg",
                       MediaUrl1=twilio.add_media(b"%PDF-1.4 invoice", "application/pdf"),
                       MediaContentType1="application/pdf")
    assert post_twilio(client, PATH, form).status_code == 200

    wait_for(replies, 30, message="the answer")
    stored = MediaFile.objects.filter(message__provider_message_id=form["MessageSid"]).order_by("index")
    assert [(m.state, m.content_type, m.size) for m in stored] == [
        ("stored", "image/jpeg", len(JPEG)), ("stored", "application/pdf", 16)]


def test_the_account_credentials_go_only_to_twilios_api_host(settings):
    settings.TWILIO_API_BASE_URL = ""
    media_url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    assert twilio_auth_for(media_url) == (settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)
    assert twilio_auth_for("https://api.twilio.com.evil.example/Media/ME1") is None
    assert twilio_auth_for("https://media.example.com/ME1") is None
    settings.TWILIO_API_BASE_URL = "http://127.0.0.1:8010"
    assert twilio_auth_for("http://127.0.0.1:8010/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1") is not None
