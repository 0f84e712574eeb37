"""Media in the inbox, in a real browser (Debian's Chromium driven by Playwright, as in
test_browser_inbox): the customer's photo shows as a thumbnail the browser actually
loads, and staff attach a photo to a reply from the page, which then shows in the thread.

Set SCREENSHOTS_DIR=docs/img to refresh the screenshot of docs/STAFF.md."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.base import ContentFile
from django.utils import timezone

from tests.support.browser import PASSWORD, log_in
from whatsapp.media.models import MediaFile
from whatsapp.models import Contact, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG (the browser must be able to draw it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture
def staff(db):
    user = User.objects.create_user("sam", password=PASSWORD, is_staff=True, first_name="Sam", last_name="Lee")
    user.user_permissions.add(Permission.objects.get(codename="use_inbox"))
    return user


def loaded(locator) -> bool:
    return locator.evaluate("img => img.complete && img.naturalWidth > 0")


def test_photos_show_as_thumbnails_and_staff_attach_one_to_a_reply(
    page, staff, tenant, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")  # the live server runs in this process
    contact = Contact.objects.create(tenant=tenant, phone="+15551234567", name="Dana",
                                     last_twilio_inbound_at=timezone.now())
    question = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND,
                                      status=Status.ANSWERED, body="Is this cake still available?", media_type="image")
    theirs = MediaFile(message=question, content_type="image/png", state="stored")
    theirs.file.save(".png", ContentFile(png(160, 120, (200, 40, 40))), save=True)

    log_in(page, staff)
    page.goto(page.url.split("/admin/")[0] + f"/admin/inbox/acme/{contact.pk}/")
    thumbnail = page.locator(".bubble.in .media img")
    thumbnail.wait_for()
    page.wait_for_function("document.querySelector('.bubble.in .media img').naturalWidth > 0")
    assert loaded(thumbnail)
    assert "Is this cake still available?" in page.inner_text(".bubble.in")

    photo = tmp_path / "our-cake.png"
    photo.write_bytes(png(120, 120, (40, 160, 40)))
    page.fill("#reply-form textarea", "Yes, this one")
    page.set_input_files("#reply-form input[type=file]", str(photo))
    page.click("#reply-form input[type=submit]")
    mine = page.locator(".bubble.out.staff .media img")
    mine.wait_for()
    page.wait_for_function("document.querySelector('.bubble.out.staff .media img').naturalWidth > 0")
    assert loaded(mine)
    assert "Yes, this one" in page.inner_text(".bubble.out.staff")
    assert page.input_value("#reply-form textarea") == ""
    sent = Message.objects.get(direction=Direction.OUTBOUND)
    assert (sent.media_type, sent.media.get().filename) == ("image", "our-cake.png")

    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=folder / "inbox-media.png", full_page=True)
