"""A staff file as the sidecar's send request carries it (`media` of
POST /sessions/{tenant}/messages): the bytes themselves, base64, since the session
uploads them to WhatsApp (unlike Twilio, which fetches a URL)."""

from __future__ import annotations

import base64

from whatsapp.media.outbound import read_bytes


def media_payload(media) -> dict:
    return {
        "kind": "image" if media.kind == "image" else "document",
        "mimetype": media.content_type,
        "fileName": media.filename or "file",
        "data": base64.b64encode(read_bytes(media)).decode("ascii"),
    }
