"""Streaming one stored file as an HTTP response, the same way wherever it is served
(the admin, the inbox, the signed URL Twilio fetches a staff file from)."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404

from whatsapp.media.models import MediaFile

# Shown inline by the browser; anything else is downloaded (an HTML or SVG file opened
# inline would run in our origin).
INLINE_TYPES = ("image/jpeg", "image/png", "image/webp", "audio/", "video/")


def file_response(media: MediaFile, inline_anything: bool = False) -> FileResponse:
    """The file of `media`, or 404. `inline_anything`: for a fetcher that is not a browser
    (Twilio), which needs the file inline whatever its type."""
    if not media.file:
        raise Http404("no stored file")
    try:
        handle = default_storage.open(media.file.name, "rb")
    except OSError:
        raise Http404("the stored file is gone") from None
    inline = inline_anything or media.content_type.startswith(INLINE_TYPES)
    filename = media.filename or media.file.name.rsplit("/", 1)[-1]
    response = FileResponse(handle, content_type=media.content_type or "application/octet-stream",
                            as_attachment=not inline, filename=filename)
    response["Content-Security-Policy"] = "default-src 'none'; media-src 'self'; img-src 'self'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
