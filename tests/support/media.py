"""Shared by the media tests: a customer's attachment posted through Twilio's signed
webhook, and the worker settings that keep media in the test's own directory."""

from __future__ import annotations

from tests.support.twilio_webhooks import post_twilio, twilio_form
from whatsapp.models import Direction, Message, Status

PATH = "/webhooks/twilio/acme/"
# The smallest JPEG header and a recording whose "spoken" words the fake LLM reads back.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
VOICE = b"OggS" + b"do you deliver on sundays"


def send_media(client, twilio, data: bytes, content_type: str, body: str = "", declared: str | None = None):
    """The customer sends one attachment (and a caption) to the tenant's Twilio number."""
    url = twilio.add_media(data, content_type)
    form = twilio_form(Body=body, NumMedia="1", MediaUrl0=url, MediaContentType0=declared or content_type)
    response = post_twilio(client, PATH, form)
    assert response.status_code == 200, response.content
    return Message.objects.get(provider_message_id=form["MessageSid"])


def media_settings(settings, tmp_path, **overrides) -> dict:
    """This process and the worker store media under the test's directory."""
    root = tmp_path / "media"
    settings.MEDIA_ROOT = str(root)
    return {"MEDIA_ROOT": str(root), "MEDIA_RETRY_BACKOFF": "0.2", **overrides}


def replies() -> list[Message]:
    return list(Message.objects.filter(direction=Direction.OUTBOUND, status__in=[Status.SENT, Status.DELIVERED]))
