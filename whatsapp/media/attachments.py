"""One attachment of an inbound message as a webhook describes it, before it has a
MediaFile row: where to fetch it from, its declared type and size, and, when the provider
already knows it cannot be had (the sidecar's download failed), why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attachment:
    # Twilio: its MediaUrlN. Baileys: the id of the file the sidecar downloaded.
    source: str
    content_type: str
    size: int | None = None
    failure: str = ""  # a MediaFile.Failure value: recorded failed, never fetched
    error: str = ""
