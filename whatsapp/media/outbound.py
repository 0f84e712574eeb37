"""A photo or document staff send from the inbox: checked (type by its first bytes, not
the browser's word; size), stored through Django's storage API and attached to the
outbound Message as a MediaFile, which the providers send with the message's first part
(Twilio by a signed URL, whatsapp.media.signed; the session by its bytes)."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from whatsapp.media.fetch import base_type
from whatsapp.media.models import MediaFile

# Magic numbers of the types staff may send: a file is what its bytes say.
SIGNATURES = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"%PDF-": "application/pdf",
}


class MediaRefused(Exception):
    """The file cannot be sent; the message says why, for staff."""


@dataclass(frozen=True)
class Upload:
    data: bytes
    content_type: str
    filename: str

    @property
    def kind(self) -> str:
        return "image" if self.content_type.startswith("image/") else "document"


def sniff(data: bytes) -> str:
    return next((kind for magic, kind in SIGNATURES.items() if data.startswith(magic)), "")


def safe_filename(name: str, content_type: str) -> str:
    """What the customer's phone shows: the base name, tame characters, the right extension."""
    stem = re.sub(r"[^\w.\- ]+", "_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(" ._")[:100]
    extension = mimetypes.guess_extension(content_type) or ""
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return f"{stem or 'file'}{extension}"


def check_upload(upload) -> Upload:
    """An uploaded file (Django's UploadedFile) as an Upload, or MediaRefused."""
    limit = settings.STAFF_MEDIA_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise MediaRefused(f"The file is too large: at most {limit // 1024} KB.")
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise MediaRefused(f"The file is too large: at most {limit // 1024} KB.")
    if not data:
        raise MediaRefused("The file is empty.")
    content_type = sniff(data)
    allowed = {t.lower() for t in settings.STAFF_MEDIA_TYPES}
    if not content_type and base_type(upload.content_type) in allowed - set(SIGNATURES.values()):
        content_type = base_type(upload.content_type)  # an allowed type we have no signature for
    if content_type not in allowed:
        raise MediaRefused("Only these files can be sent: " + ", ".join(sorted(allowed)) + ".")
    return Upload(data, content_type, safe_filename(upload.name, content_type))


def attach(message, upload: Upload) -> MediaFile:
    """Store the file and attach it to the (outbound) message."""
    media = MediaFile(message=message, index=0, content_type=upload.content_type, filename=upload.filename,
                      size=len(upload.data), state=MediaFile.State.STORED, settled_at=timezone.now())
    extension = mimetypes.guess_extension(upload.content_type) or ".bin"
    media.file.name = default_storage.save(media.file.field.generate_filename(media, extension),
                                           ContentFile(upload.data))
    media.save()
    return media


def read_bytes(media: MediaFile) -> bytes:
    with default_storage.open(media.file.name, "rb") as handle:
        return handle.read()
