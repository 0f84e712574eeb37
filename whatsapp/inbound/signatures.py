"""Webhook signatures: Twilio's (its own RequestValidator) and the sidecar's
(HMAC-SHA256 over "<timestamp>.<body>", valid for a few minutes)."""

from __future__ import annotations

import hashlib
import hmac
import time

from django.conf import settings
from twilio.request_validator import RequestValidator


def twilio_public_url(request) -> str:
    """The URL Twilio called, which is what it signed. Behind a TLS-terminating proxy
    Django sees http://internal-host/...; PUBLIC_BASE_URL (or trusted X-Forwarded-*
    headers) gives back the public https URL."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + request.get_full_path()
    return request.build_absolute_uri()


def twilio_signature_valid(request, params) -> bool:
    signature = request.META.get("HTTP_X_TWILIO_SIGNATURE", "")
    if not signature:
        return False
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(twilio_public_url(request), params, signature)


def sidecar_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sidecar_signature_problem(request, body: bytes) -> str | None:
    """None when the request is signed and fresh; otherwise what is wrong."""
    timestamp = request.META.get("HTTP_X_SIDECAR_TIMESTAMP", "")
    signature = request.META.get("HTTP_X_SIDECAR_SIGNATURE", "")
    if not timestamp or not signature:
        return "missing X-Sidecar-Timestamp or X-Sidecar-Signature"
    try:
        age = abs(time.time() - int(timestamp))
    except (ValueError, OverflowError):  # OverflowError: an int too large for a float
        return "X-Sidecar-Timestamp is not a unix time"
    if age > settings.SIDECAR_WEBHOOK_MAX_AGE:
        return "X-Sidecar-Timestamp is outside the allowed window"
    expected = sidecar_signature(settings.SIDECAR_WEBHOOK_SECRET, timestamp, body)
    # compare_digest raises TypeError on non-ASCII str (a header may carry any latin-1 byte).
    if not signature.isascii() or not hmac.compare_digest(expected, signature):
        return "signature does not match"
    return None
