"""Staff media in the inbox, on real Django and PostgreSQL: a photo or document sent from
the conversation page is checked (its bytes decide its type; its size), stored through
Django's storage and attached to an ordinary outbound message; the thread shows every
file (a thumbnail, an audio player with the transcript, a download link); the signed URL
Twilio fetches a staff file from refuses a bad or expired signature and never serves a
customer's file. Sending it through real workers: test_media_outbound."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from tests.support.media import JPEG
from whatsapp.media.models import MediaFile
from whatsapp.media.signed import signed_url
from whatsapp.models import Contact, Direction, Message, Status
from whatsapp.outbound.providers.base import PERMANENT, OutgoingPart, ProviderError
from whatsapp.outbound.providers.twilio import TwilioProvider

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PUBLIC_BASE_URL = "https://bot.example.com"


@pytest.fixture
def contact(tenant):
    return Contact.objects.create(tenant=tenant, phone="+15551234567", name="Dana",
                                  last_twilio_inbound_at=timezone.now())


def reply(client, contact, body="", name="photo.jpg", data=JPEG, content_type="image/jpeg"):
    upload = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(f"/admin/inbox/acme/{contact.pk}/reply/", {"body": body, "file": upload},
                       HTTP_ACCEPT="application/json")


def thread(client, contact) -> list[dict]:
    """The messages of the thread (not its events: "bot paused by Sam")."""
    items = client.get(f"/admin/inbox/acme/{contact.pk}/thread.json").json()["items"]
    return [i for i in items if i["type"] != "event"]


def test_a_staff_photo_is_an_outbound_message_with_its_file_and_shows_as_a_thumbnail(staff_client, contact):
    response = reply(staff_client, contact, body="Your cake, ready at 5")
    assert response.json() == {"ok": True}

    message = Message.objects.get(direction=Direction.OUTBOUND)
    assert (message.status, message.media_type, message.body, message.engine) == (
        Status.QUEUED, "image", "Your cake, ready at 5", "staff")
    media = message.media.get()
    assert (media.content_type, media.size, media.state, media.filename) == ("image/jpeg", len(JPEG), "stored",
                                                                             "photo.jpg")
    assert media.file.read() == JPEG

    [item] = thread(staff_client, contact)
    assert item["body"] == "Your cake, ready at 5"
    url = f"/admin/inbox/acme/{contact.pk}/media/{media.pk}/"
    assert item["media"] == [f'<a href="{url}"><img src="{url}" alt="photo" '
                             f'style="max-width:160px;max-height:160px"></a>']
    served = staff_client.get(url)
    assert served.status_code == 200 and b"".join(served.streaming_content) == JPEG


def test_a_document_keeps_a_tame_name_and_may_go_without_a_caption(staff_client, contact):
    assert reply(staff_client, contact, name="../../Menu (2026)?.PDF", data=PDF,
                 content_type="application/octet-stream").json() == {"ok": True}
    media = MediaFile.objects.get()
    assert (media.message.media_type, media.content_type, media.filename) == ("document", "application/pdf",
                                                                              "Menu _2026_.pdf")
    [item] = thread(staff_client, contact)
    assert "Download Menu _2026_.pdf (application/pdf," in item["media"][0]


@pytest.mark.parametrize(("name", "data", "content_type", "error"), [
    ("invoice.jpg", b"MZ\x90\x00 this is a program", "image/jpeg", "Only these files can be sent"),
    ("page.html", b"<html><script>alert(1)</script>", "text/html", "Only these files can be sent"),
    ("big.jpg", JPEG + b"\x00" * 2048, "image/jpeg", "too large"),
    ("empty.jpg", b"", "image/jpeg", "empty"),
])
def test_a_file_that_is_not_what_it_claims_or_too_large_is_refused_and_nothing_is_stored(
    staff_client, contact, settings, name, data, content_type, error
):
    settings.STAFF_MEDIA_MAX_BYTES = len(JPEG) + 1024
    response = reply(staff_client, contact, body="see attached", name=name, data=data, content_type=content_type)
    assert response.status_code == 409
    assert error in response.json()["error"]
    assert not Message.objects.filter(direction=Direction.OUTBOUND).exists()
    assert not MediaFile.objects.exists()


def test_the_thread_shows_a_customers_voice_note_with_its_transcript_and_a_failed_file(staff_client, contact):
    inbound = Message.objects.create(tenant=contact.tenant, contact=contact, direction=Direction.INBOUND,
                                     status=Status.ANSWERED, body="do you deliver", media_type="audio")
    voice = MediaFile(message=inbound, index=0, content_type="audio/ogg", state="stored", size=9,
                      transcript="do you deliver", transcript_state="done")
    voice.file.save(".ogg", ContentFile(b"OggSvoice"), save=True)
    MediaFile.objects.create(message=inbound, index=1, content_type="image/jpeg", state="failed",
                             failure="too_large", error="17000000 bytes or more")

    [item] = thread(staff_client, contact)
    url = f"/admin/inbox/acme/{contact.pk}/media/{voice.pk}/"
    assert item["media"][0] == (f'<audio controls preload="none" src="{url}"></audio><br><em>Transcript:</em> '
                                "do you deliver")
    assert "Too large" in item["media"][1] and "17000000 bytes" in item["media"][1]
    assert b"".join(staff_client.get(url).streaming_content) == b"OggSvoice"


def test_a_file_of_another_conversation_is_not_served_from_this_one(staff_client, contact, tenant):
    reply(staff_client, contact, body="x")
    other = Contact.objects.create(tenant=tenant, phone="+15559998888")
    media = MediaFile.objects.get()
    assert staff_client.get(f"/admin/inbox/acme/{other.pk}/media/{media.pk}/").status_code == 404


def test_the_signed_url_serves_a_staff_file_without_login_and_refuses_bad_or_expired_signatures(
    staff_client, contact, client, settings
):
    reply(staff_client, contact, body="x")
    media = MediaFile.objects.get()
    url = signed_url(media)
    assert url.startswith("https://bot.example.com/media/out/")
    path = url.removeprefix("https://bot.example.com")
    client.logout()  # Twilio has no session with us

    ok = client.get(path)
    assert ok.status_code == 200 and ok["Content-Type"] == "image/jpeg"
    assert b"".join(ok.streaming_content) == JPEG
    token = path.split("/")[3]
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert client.get(path.replace(token, forged)).status_code == 403
    assert client.get(path.replace(f"/out/{media.pk}:", f"/out/{media.pk + 1}:")).status_code == 403
    assert client.post(path).status_code == 405

    settings.MEDIA_URL_MAX_AGE = -1  # any signature is older than that
    assert client.get(path).status_code == 410


def test_a_customers_file_never_gets_a_public_url_even_with_a_valid_signature(client, contact):
    inbound = Message.objects.create(tenant=contact.tenant, contact=contact, direction=Direction.INBOUND,
                                     status=Status.ANSWERED, media_type="image")
    photo = MediaFile(message=inbound, index=0, content_type="image/jpeg", state="stored", size=len(JPEG))
    photo.file.save(".jpg", ContentFile(JPEG), save=True)
    path = signed_url(photo).removeprefix("https://bot.example.com")
    assert client.get(path).status_code == 404


def test_without_a_public_base_url_twilio_refuses_a_file_for_good_with_a_reason(staff_client, contact, settings):
    reply(staff_client, contact, body="x")
    message = Message.objects.get(direction=Direction.OUTBOUND)
    settings.PUBLIC_BASE_URL = ""
    part = OutgoingPart(message=message, to=contact.phone, text="x", key="k:0", media=message.media.get())
    with pytest.raises(ProviderError) as refused:
        TwilioProvider().send(part)  # before any request: nothing reaches Twilio
    assert refused.value.kind == PERMANENT and "PUBLIC_BASE_URL" in str(refused.value)
