"""A staff photo through real workers, a real Django server and the real sidecar: through
Twilio by a signed URL (the fake Twilio fetches it, as Twilio does, and fails the message
with 11200 when it cannot); through the WhatsApp Web session by its bytes (the sandbox
phone gets exactly them); and when Twilio cannot fetch it, the reply fails over to the
session, which sends the bytes. The page side (upload checks, thread): test_media_staff_pages."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from tests.support.database import database_url
from tests.support.media import JPEG
from tests.support.waiting import wait_for
from tests.support.web_server import gunicorn
from whatsapp.models import Contact, DeadLetter, DeliveryAttempt, Direction, Message, SessionState, Status
from whatsapp.sessions import lifecycle

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PHONE = "+15551234567"
CAPTION = "Your cake, ready at 5"


@pytest.fixture
def contact(tenant):
    # The customer wrote a minute ago: Twilio's 24-hour window is open.
    return Contact.objects.create(tenant=tenant, phone=PHONE, name="Dana", last_twilio_inbound_at=timezone.now())


@pytest.fixture
def media_root(settings, tmp_path, monkeypatch) -> Path:
    """Every process (this one, the web server, the workers) stores files in one place."""
    root = tmp_path / "media"
    settings.MEDIA_ROOT = str(root)
    monkeypatch.setenv("MEDIA_ROOT", str(root))
    return root


@pytest.fixture
def web(redis_server, media_root, tmp_path, request):
    """A real Django server for Twilio to fetch from and post its status callbacks to."""

    def start(**env) -> str:
        environment = {**os.environ, "DJANGO_ENV": "test", "DATABASE_URL": database_url(),
                       "REDIS_URL": redis_server.url, **{k: str(v) for k, v in env.items()}}
        server = gunicorn(environment, tmp_path / "web.log", "--workers", "1", "--threads", "4")
        request.addfinalizer(lambda: server.__exit__(None, None, None))
        return server.__enter__()

    return start


def send_photo(client, contact) -> Message:
    upload = SimpleUploadedFile("cake.jpg", JPEG, content_type="image/jpeg")
    response = client.post(f"/admin/inbox/acme/{contact.pk}/reply/", {"body": CAPTION, "file": upload},
                           HTTP_ACCEPT="application/json")
    assert response.json() == {"ok": True}
    return Message.objects.get(direction=Direction.OUTBOUND)


def delivered(reply: Message) -> bool:
    return Message.objects.get(pk=reply.pk).status in {Status.SENT, Status.DELIVERED}


def test_a_staff_photo_goes_through_twilio_by_a_signed_url_that_twilio_fetches(
    staff_client, contact, twilio, web, start_worker, media_root
):
    url = web()
    start_worker(MEDIA_ROOT=media_root, PUBLIC_BASE_URL=url)

    reply = send_photo(staff_client, contact)

    [sent] = wait_for(lambda: twilio.sent_to(PHONE), 20, message="the photo at Twilio")
    assert sent["body"] == CAPTION and sent["num_media"] == "1"
    [media_url] = sent["media_urls"]
    assert media_url.startswith(f"{url}/media/out/")
    fetched = wait_for(lambda: sent["fetched_media"], 10, message="Twilio fetching the file")
    assert fetched == [{"url": media_url, "content_type": "image/jpeg", "data": JPEG}]
    wait_for(lambda: delivered(reply), 10, message="the reply recorded as sent")
    assert Message.objects.get(pk=reply.pk).provider == "twilio"


def test_an_expired_link_is_refused_and_twilio_fails_the_photo_so_staff_see_a_dead_letter(
    staff_client, contact, twilio, web, start_worker, media_root
):
    url = web(MEDIA_URL_MAX_AGE=-1)  # every link has expired by the time Twilio fetches it
    start_worker(MEDIA_ROOT=media_root, PUBLIC_BASE_URL=url)

    reply = send_photo(staff_client, contact)

    [sent] = wait_for(lambda: twilio.sent_to(PHONE), 20, message="the photo at Twilio")
    wait_for(lambda: sent["status"] == "failed", 10, message="Twilio failing the message")
    assert sent["error_code"] == 11200 and sent["fetched_media"] == []
    letter = wait_for(lambda: DeadLetter.objects.filter(message=reply).first(), 15, message="the dead letter")
    assert letter.reason == DeadLetter.Reason.UNDELIVERED
    assert "could not fetch the media file" in letter.last_error


def _sandbox_activity(sandbox, tenant: str) -> list[dict]:
    return sandbox.http.get(f"{sandbox.base}/sandbox/{tenant}/activity", timeout=5).json()["activity"]


def _connect(tenant_slug: str) -> None:
    lifecycle.start.delay(tenant_slug)
    wait_for(lambda: SessionState.objects.filter(tenant__slug=tenant_slug, status="connected", can_send=True).first(),
             20, message="the session to be connected")


def _phone_file(tmp_path: Path, message_id: str) -> bytes:
    """What the sandbox phone received (the lifecycle worker's SIDECAR_DATA_DIR)."""
    return (tmp_path / "sidecar-data" / "sandbox" / "acme" / "media" / message_id).read_bytes()


def test_a_staff_photo_goes_through_the_session_as_its_bytes(
    staff_client, contact, tenant, media_root, sandbox, lifecycle_worker, start_worker, live_django, tmp_path
):
    tenant.baileys_enabled, tenant.twilio_enabled = True, False
    tenant.save()
    lifecycle_worker()
    start_worker(MEDIA_ROOT=media_root)
    _connect("acme")

    reply = send_photo(staff_client, contact)

    [sent] = wait_for(lambda: sandbox.sent("acme"), 20, message="the photo on the customer's phone")
    assert sent["text"] == CAPTION and sent["to"] == "15551234567@s.whatsapp.net"
    assert sent["media"] == {"kind": "image", "mimetype": "image/jpeg", "fileName": "cake.jpg", "size": len(JPEG),
                             "sha256": hashlib.sha256(JPEG).hexdigest()}
    assert _phone_file(tmp_path, sent["messageId"]) == JPEG
    wait_for(lambda: delivered(reply), 10)
    assert Message.objects.get(pk=reply.pk).provider_message_id == sent["messageId"]
    # Presence is off for this tenant: the phone saw the message and nothing else.
    assert [a["event"] for a in _sandbox_activity(sandbox, "acme")] == ["message"]


def test_when_twilio_cannot_fetch_the_photo_the_reply_fails_over_to_the_session_with_the_bytes(
    staff_client, contact, tenant, media_root, twilio, sandbox, request, start_worker, tmp_path, monkeypatch
):
    tenant.baileys_enabled = True  # the session first, Twilio second
    tenant.save()
    monkeypatch.setenv("MEDIA_URL_MAX_AGE", "-1")  # Twilio's fetch of the link fails (410)
    live_django = request.getfixturevalue("live_django")
    request.getfixturevalue("lifecycle_worker")()  # the sidecar runs, the session is not started yet
    start_worker(MEDIA_ROOT=media_root, PUBLIC_BASE_URL=live_django)

    reply = send_photo(staff_client, contact)

    [at_twilio] = wait_for(lambda: twilio.sent_to(PHONE), 20, message="the photo at Twilio (the session is down)")
    wait_for(lambda: at_twilio["status"] == "failed", 10, message="Twilio failing the message")
    wait_for(lambda: DeliveryAttempt.objects.filter(message=reply, provider="twilio", outcome="failed").exists(), 15,
             message="the failure receipt recorded")
    _connect("acme")  # the session comes back: the reply goes out through it

    [sent] = wait_for(lambda: sandbox.sent("acme"), 30, message="the photo on the customer's phone")
    assert sent["text"] == CAPTION and sent["media"]["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert _phone_file(tmp_path, sent["messageId"]) == JPEG
    wait_for(lambda: delivered(reply), 10)
    reply.refresh_from_db()
    assert reply.provider == "baileys"
    assert not DeadLetter.objects.filter(message=reply).exists()
    assert len(twilio.sent_to(PHONE)) == 1  # Twilio was not tried again for it
