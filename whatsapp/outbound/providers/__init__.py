"""Providers: one module each behind the small interface in base.py."""

from __future__ import annotations

from django.conf import settings

from whatsapp.outbound.providers.base import ProviderClient

# One client per process and configuration, so HTTP connections are kept alive between
# sends (a new TLS handshake per message costs more than the send).
_cache: dict[tuple, ProviderClient] = {}


def get_provider(name: str) -> ProviderClient:
    if name == "twilio":
        key = (name, settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_API_BASE_URL,
               settings.TWILIO_READ_TIMEOUT, settings.TWILIO_MAX_BODY, settings.PUBLIC_BASE_URL)
    elif name == "baileys":
        key = (name, settings.SIDECAR_CONNECT_TIMEOUT,
               settings.SIDECAR_READ_TIMEOUT)
    else:
        raise ValueError(f"unknown provider {name!r}")
    if key not in _cache:
        _cache[key] = _make(name)
    return _cache[key]


def _make(name: str) -> ProviderClient:
    # Imported here so that a web process never loads what it does not use.
    if name == "twilio":
        from whatsapp.outbound.providers.twilio import TwilioProvider

        return TwilioProvider()
    from whatsapp.outbound.providers.baileys import BaileysProvider

    return BaileysProvider()
