"""The sidecar's inbound webhook as the sidecar posts it: a payload and its signature."""

from __future__ import annotations

import json
import time

from django.conf import settings

from whatsapp.inbound.signatures import sidecar_signature

PATH = "/webhooks/baileys/acme/"


def post_signed(client, payload: dict, path: str = PATH):
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    return client.generic(
        "POST", path, body, content_type="application/json",
        HTTP_X_SIDECAR_TIMESTAMP=ts, HTTP_X_SIDECAR_SIGNATURE=sidecar_signature(settings.SIDECAR_WEBHOOK_SECRET, ts, body),
    )


def inbound(**fields) -> dict:
    """One inbound text from Dana, with whatever `fields` change."""
    payload = {"id": "3A0F" + str(time.monotonic_ns()), "tenant": "acme", "from": "15551234567",
               "fromJid": "15551234567@s.whatsapp.net", "fromAltJid": None, "pushName": "Dana",
               "timestamp": int(time.time()), "type": "text", "text": "hello"}
    payload.update(fields)
    return payload
