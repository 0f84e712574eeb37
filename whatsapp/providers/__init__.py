"""Providers: one module each behind the small interface in base.py."""

from __future__ import annotations

from whatsapp.providers.base import Provider


def get_provider(name: str) -> Provider:
    # Imported here so that a web process never loads what it does not use.
    if name == "twilio":
        from whatsapp.providers.twilio import TwilioProvider

        return TwilioProvider()
    if name == "baileys":
        from whatsapp.providers.baileys import BaileysProvider

        return BaileysProvider()
    raise ValueError(f"unknown provider {name!r}")
