"""Media in the admin: staff who may read messages see a photo's thumbnail, a voice
note's player and transcript, a document's download link and why a file failed; the
files come from a staff-only admin view, never a public URL. Deleting a message
(retention, erasure) deletes its stored file."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from tests.support.media import JPEG, VOICE
from whatsapp.media.models import MediaFile
from whatsapp.models import Contact, Direction, Message, Status
from whatsapp.retention import purge

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def staff(client):
    user = User.objects.create_user("sam", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_message"))
    client.force_login(user)
    return client


@pytest.fixture
def message(tenant):
    contact = Contact.objects.create(tenant=tenant, phone="+15551234567")
    return Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, body="",
                                  media_type="image", status=Status.ANSWERED)


def stored(message, data: bytes, content_type: str, index: int = 0, **fields) -> MediaFile:
    media = MediaFile.objects.create(message=message, index=index, content_type=content_type, state="stored",
                                     size=len(data), **fields)
    media.file.save(f".{content_type.split('/')[1]}", ContentFile(data))
    return media


def page(client, message) -> str:
    response = client.get(f"/admin/whatsapp/message/{message.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_staff_see_a_thumbnail_a_player_with_the_transcript_a_download_link_and_failures(staff, message):
    photo = stored(message, JPEG, "image/jpeg")
    voice = stored(message, VOICE, "audio/ogg", index=1, transcript="do you deliver on sundays",
                   transcript_state="done")
    pdf = stored(message, b"%PDF-1.4", "application/pdf", index=2)
    MediaFile.objects.create(message=message, index=3, content_type="image/jpeg", state="failed",
                             failure="too_large", error="9000000 bytes or more; MEDIA_MAX_BYTES is 16777216")

    html = page(staff, message)

    assert f'<img src="/admin/whatsapp/mediafile/{photo.pk}/file/"' in html
    assert f'<audio controls preload="none" src="/admin/whatsapp/mediafile/{voice.pk}/file/">' in html
    assert "do you deliver on sundays" in html
    assert f'<a href="/admin/whatsapp/mediafile/{pdf.pk}/file/" download>Download application/pdf' in html
    assert "Too large (MEDIA_MAX_BYTES)" in html and "MEDIA_MAX_BYTES is 16777216" in html


def test_the_file_is_served_to_staff_only(client, staff, message, tenant):
    photo = stored(message, JPEG, "image/jpeg")
    url = f"/admin/whatsapp/mediafile/{photo.pk}/file/"

    response = staff.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == JPEG
    assert response["Content-Type"] == "image/jpeg" and "sandbox" in response["Content-Security-Policy"]

    client.logout()
    assert client.get(url).status_code == 302  # to the login page
    nobody = User.objects.create_user("nora", password="pw-for-tests-only", is_staff=True)
    client.force_login(nobody)
    assert client.get(url).status_code == 403


def test_a_document_is_downloaded_not_opened_in_the_admin(staff, message):
    pdf = stored(message, b"%PDF-1.4", "application/pdf")

    response = staff.get(f"/admin/whatsapp/mediafile/{pdf.pk}/file/")

    assert response["Content-Disposition"].startswith("attachment;")


def test_retention_deletes_the_stored_file_with_its_message(message, tenant, django_capture_on_commit_callbacks):
    photo = stored(message, JPEG, "image/jpeg")
    old = timezone.now() - timedelta(days=400)
    Message.objects.filter(pk=message.pk).update(created_at=old, updated_at=old)
    assert default_storage.exists(photo.file.name)

    with django_capture_on_commit_callbacks(execute=True):
        assert purge()["messages"] == 1

    assert not default_storage.exists(photo.file.name)
