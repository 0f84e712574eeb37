"""FIELD_ENCRYPTION_KEYS, read by the settings (no Django imports here): see
project.encryption for what the keys protect and how they rotate."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet

HOW_TO_MAKE_ONE = ("python -c 'from cryptography.fernet import Fernet; "
                   "print(Fernet.generate_key().decode())'")


def derived_key(secret: str) -> str:
    """A Fernet key derived from DJANGO_SECRET_KEY: the development and test default only
    (production refuses to start without FIELD_ENCRYPTION_KEYS)."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"field-encryption:" + secret.encode()).digest()).decode()


def parse_keys(raw: str) -> list[str]:
    """The keys of a comma-separated list, first (the encrypting one) first. ValueError
    names a bad key by its position, never by its value."""
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(f"FIELD_ENCRYPTION_KEYS: key {position} is not a Fernet key (32 url-safe "
                             f"base64-encoded bytes; make one with {HOW_TO_MAKE_ONE})") from None
    return keys
