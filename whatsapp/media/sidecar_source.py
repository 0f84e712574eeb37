"""Baileys media: the sidecar has already downloaded the customer's file from WhatsApp
(whatsapp/sidecar/src/media.js) and names it in the webhook by an id. Here: the webhook's
media fields read into an Attachment (never a refusal: a 4xx would lose the message, so
anything odd becomes a failed attachment staff can see), and the file fetched from the
sidecar with its bearer token, bounded like any download (whatsapp.media.fetch), then
deleted there so the sidecar's disk does not fill."""

from __future__ import annotations

import logging
import re

from django.conf import settings

from whatsapp.media.attachments import Attachment
from whatsapp.media.fetch import Fetched, Permanent, Transient, fetch
from whatsapp.sessions.sidecar_client import SidecarUnavailable, sidecar_for

log = logging.getLogger("whatsapp.media")

# The sidecar's own ids (src/media.js MEDIA_ID_RE): nothing else is put into a URL.
MEDIA_ID = re.compile(r"m[0-9a-f]{32}")
# The sidecar's mediaError codes that mean "too large"; anything else failed to download.
SIDECAR_FAILURES = {"too_large": "too_large"}


def sidecar_attachments(data: dict) -> list[Attachment]:
    """The attachment in a sidecar webhook body (`media`, `mediaError`), or none."""
    media = data.get("media")
    if media is None:
        return []
    if not isinstance(media, dict):
        return [Attachment("", "", failure="refused", error="the sidecar sent a malformed media field")]
    content_type = media.get("mimetype") if isinstance(media.get("mimetype"), str) else ""
    content_type = content_type.replace("\x00", "").strip()[:100]
    size = media.get("size")
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    problem = data.get("mediaError")
    if problem is not None:
        code = problem.get("code") if isinstance(problem, dict) else None
        detail = problem.get("detail") if isinstance(problem, dict) and isinstance(problem.get("detail"), str) else ""
        failure = SIDECAR_FAILURES.get(code, "download_failed")
        return [Attachment("", content_type, size, failure=failure,
                           error=f"the sidecar could not download it: {detail.replace(chr(0), '')[:300]}")]
    media_id = media.get("id")
    if not isinstance(media_id, str) or not MEDIA_ID.fullmatch(media_id):
        return [Attachment("", content_type, size, failure="refused", error="the sidecar sent no valid media id")]
    return [Attachment(media_id, content_type, size)]


def fetch_from_sidecar(tenant, media_id: str, declared_size: int | None) -> Fetched:
    """The file the sidecar holds for this message, or FetchError (too large, wrong type,
    gone: Permanent; the sidecar down or slow, its shard without an owner: Transient).
    The tenant's sidecar is the one that owns its shard now (docs/SCALING.md)."""
    if not MEDIA_ID.fullmatch(media_id or ""):
        raise Permanent("refused", "no valid sidecar media id")
    if declared_size is not None and declared_size > settings.MEDIA_MAX_BYTES:
        raise Permanent("too_large", f"{declared_size} bytes; MEDIA_MAX_BYTES is {settings.MEDIA_MAX_BYTES}")
    try:
        client = sidecar_for(tenant)
    except SidecarUnavailable as exc:
        raise Transient(f"the sidecar is not reachable: {exc}") from exc
    return fetch(client.media_url(tenant.slug, media_id), client.auth())


def forget_on_sidecar(tenant, media_id: str) -> None:
    """Best effort: the sidecar's sweep deletes what this misses."""
    if not MEDIA_ID.fullmatch(media_id or ""):
        return
    try:
        deleted = sidecar_for(tenant).delete_media(tenant.slug, media_id)
    except SidecarUnavailable:
        deleted = False
    if not deleted:
        log.info("the sidecar's copy of a media file is left to its expiry")
