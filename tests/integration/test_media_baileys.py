"""Baileys inbound media end to end on real parts: the lifecycle worker runs the real
sidecar (sandbox transport: the customer's phone and WhatsApp's media host); the sidecar
downloads the file, spools the signed webhook to a real Django server; the media task on
a real worker fetches the file from the sidecar with its bearer token, stores it through
Django's storage, and the bot answers: a voice note from its transcript (the fake
OpenAI-compatible /v1/audio/transcriptions), a photo as image content with its caption.
An oversize file, an expired media URL and a download that fails are answered too, and
staff see what failed in the media admin."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth.models import Permission, User

from bots.models import Rule
from tests.support.media import JPEG, VOICE, media_settings, replies
from tests.support.waiting import wait_for
from whatsapp.media.models import MediaFile
from whatsapp.models import Message, SessionState
from whatsapp.sessions import lifecycle

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CUSTOMER = "15551234567"
NON_TEXT = "Thanks! We can only read text messages here; could you write your question in words?"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def baileys_tenant(tenant):
    tenant.baileys_enabled = True
    tenant.transcribe_voice_notes = True
    tenant.save()
    Rule.objects.create(tenant=tenant, pattern="deliver", answer="We deliver every day, Sundays too.")
    return tenant


@pytest.fixture
def running(baileys_tenant, sandbox, lifecycle_worker, start_worker, settings, tmp_path, llm):
    """The sidecar (through the lifecycle worker) and an ai/send worker, the session connected."""

    def run(sidecar_env: dict | None = None, **worker_env):
        lifecycle_worker(SIDECAR_MEDIA_RETRY_BASE_MS=50, **(sidecar_env or {}))
        start_worker(**media_settings(settings, tmp_path, LLM_BASE_URL=llm.base_url,
                                      TRANSCRIPTION_BASE_URL=llm.base_url, **worker_env))
        lifecycle.start.delay("acme")
        wait_for(lambda: SessionState.objects.filter(tenant__slug="acme", status="connected", can_send=True).first(),
                 20, message="the session to be connected")
        return sandbox

    return run


def phone_received(sandbox):
    return wait_for(lambda: sandbox.sent("acme"), 30, message="the answer on the customer's phone")


def sidecar_files(tmp_path) -> list[str]:
    root = tmp_path / "sidecar-data" / "media" / "files" / "acme"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_a_voice_note_is_transcribed_and_answered_from_its_transcript(running, llm, tmp_path):
    sandbox = running()

    sandbox.inbound("acme", **{"from": CUSTOMER, "id": "VOICE1", "type": "audio", "media": {"base64": b64(VOICE)}})

    assert phone_received(sandbox)[0]["text"] == "We deliver every day, Sundays too."
    message = Message.objects.get(provider_message_id="VOICE1")
    assert (message.media_type, message.body) == ("audio", "do you deliver on sundays")
    media = MediaFile.objects.get(message=message)
    assert (media.state, media.content_type, media.size) == ("stored", "audio/ogg", len(VOICE))
    assert (media.transcript_state, media.transcript) == ("done", "do you deliver on sundays")
    assert media.file.read() == VOICE, "the recording is kept for staff"
    (request,) = llm.transcriptions
    assert request["size"] == len(VOICE)
    wait_for(lambda: sidecar_files(tmp_path) == [], 10, message="the sidecar's copy deleted once Django has it")


def test_a_photo_with_a_caption_reaches_the_model_as_image_content(running, baileys_tenant, llm):
    baileys_tenant.bot_engine = "llm"
    baileys_tenant.llm_accepts_images = True
    baileys_tenant.save()
    sandbox = running()

    sandbox.inbound("acme", **{"from": CUSTOMER, "id": "PHOTO1", "type": "image", "text": "is this cake gluten-free?",
                               "media": {"base64": b64(JPEG), "mimetype": "image/jpeg"}})

    answer = phone_received(sandbox)[0]["text"]
    assert answer == "LLM answer to: [1 image] [image from the customer: is this cake gluten-free?]"
    assert llm.bodies()[0]["messages"][-1] == {"role": "user", "content": [
        {"type": "text", "text": "[image from the customer: is this cake gluten-free?]"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + b64(JPEG)}}]}


def test_an_expired_media_url_is_reuploaded_by_the_phone_and_answered(running, llm):
    sandbox = running()

    sandbox.inbound("acme", **{"from": CUSTOMER, "id": "OLDVOICE", "type": "audio", "mediaBehavior": "expired",
                               "media": {"base64": b64(VOICE)}})

    assert phone_received(sandbox)[0]["text"] == "We deliver every day, Sundays too."
    assert sandbox.state("acme")["mediaReuploads"] == 1
    assert MediaFile.objects.get(message__provider_message_id="OLDVOICE").state == "stored"


def staff_page(client) -> str:
    user = User.objects.create_user("sam", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_message"))
    client.force_login(user)
    response = client.get("/admin/whatsapp/mediafile/")
    assert response.status_code == 200
    return response.content.decode()


def test_an_oversize_file_and_a_failed_download_are_answered_and_shown_to_staff(running, client):
    # The sidecar refuses files over 4 KB; its downloads are tried twice.
    sandbox = running({"SIDECAR_MEDIA_MAX_BYTES": 4096, "SIDECAR_MEDIA_RETRIES": 2})

    sandbox.inbound("acme", **{"from": CUSTOMER, "id": "BIG1", "type": "video", "media": {"base64": b64(b"v" * 9000)}})
    sandbox.inbound("acme", **{"from": "15557654321", "id": "BROKEN1", "type": "image", "mediaBehavior": "fail"})

    wait_for(lambda: len(sandbox.sent("acme")) == 2, 30, message="both customers answered")
    assert {s["text"] for s in sandbox.sent("acme")} == {NON_TEXT}
    big = MediaFile.objects.get(message__provider_message_id="BIG1")
    assert (big.state, big.failure, big.content_type, big.size) == ("failed", "too_large", "video/mp4", 9000)
    broken = MediaFile.objects.get(message__provider_message_id="BROKEN1")
    assert (broken.state, broken.failure) == ("failed", "download_failed")
    assert "after 2 attempts" in broken.error
    wait_for(lambda: len(replies()) == 2, 10, message="both answers recorded as sent")
    page = staff_page(client)
    assert "Too large (MEDIA_MAX_BYTES)" in page and "Download failed after retries" in page


def test_a_file_too_large_for_django_is_not_fetched_whole(running, tmp_path):
    # The sidecar takes it (its limit is WhatsApp's); Django's MEDIA_MAX_BYTES is smaller.
    sandbox = running(MEDIA_MAX_BYTES=1000)

    sandbox.inbound("acme", **{"from": CUSTOMER, "id": "DOC1", "type": "document",
                               "media": {"base64": b64(b"%PDF-1.4 " + b"x" * 5000), "fileName": "menu.pdf"}})

    assert phone_received(sandbox)
    media = MediaFile.objects.get(message__provider_message_id="DOC1")
    assert (media.state, media.failure, bool(media.file)) == ("failed", "too_large", False)
    wait_for(lambda: sidecar_files(tmp_path) == [], 10, message="the refused file deleted on the sidecar too")
