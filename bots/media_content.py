"""What the bot can read of a customer's media: a voice note by its transcript (the
message body, set by whatsapp.media.tasks), a photo by its caption, and a photo itself
when the tenant's model accepts images (sent as image content, a base64 data URL)."""

from __future__ import annotations

import base64
import logging

from django.core.files.storage import default_storage

from whatsapp.media.models import MediaFile
from whatsapp.models import Message

log = logging.getLogger("bots.media")


def sees_images(tenant, engine_name: str) -> bool:
    return engine_name == "llm" and tenant.llm_accepts_images


def readable(message: Message, images_seen: bool) -> bool:
    """Whether the engine has something to answer in this message: text, a caption or a
    transcript, or a stored image the model will see."""
    if message.media_type == "text" or message.body.strip():
        return True
    return images_seen and stored_images(message).exists()


def stored_images(message: Message):
    return MediaFile.objects.filter(message=message, state=MediaFile.State.STORED, content_type__startswith="image/")


def image_parts(batch: list[Message]) -> list[dict]:
    """OpenAI image content parts for the batch's stored photos, oldest first."""
    parts = []
    for message in batch:
        for media in stored_images(message):
            try:
                with default_storage.open(media.file.name, "rb") as handle:
                    data = base64.b64encode(handle.read()).decode("ascii")
            except OSError:
                log.warning("stored image could not be read", extra={"media_id": media.pk})
                continue
            parts.append({"type": "image_url", "image_url": {"url": f"data:{media.content_type};base64,{data}"}})
    return parts
