"""Secrets stored in the database (a tenant's LLM API key) are encrypted at rest with
Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`), keyed from the environment.

FIELD_ENCRYPTION_KEYS is a comma-separated list of Fernet keys: the first encrypts, all
of them decrypt (MultiFernet), so a key is rotated by putting a new one first, running
`manage.py rotate_field_encryption`, and then dropping the old one. A database dump, a
backup or a read-only SQL user therefore never sees a secret in clear.

EncryptedTextField holds the clear text in Python and the token in the column. In a
dump (`dumpdata`) it writes the token, and `loaddata` reads a token back. A value that
cannot be decrypted (a key was dropped too early, or the row was written around Django)
reads as an empty, "set" secret that keeps its stored bytes when the row is saved again,
and an error is logged without the value.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

log = logging.getLogger("project.encryption")


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(text: str) -> str:
    return fernet().encrypt(text.encode()).decode() if text else ""


def decrypt(token: str) -> str:
    """Raises InvalidToken when no key opens it (or it is not a token at all)."""
    return fernet().decrypt(token.encode()).decode() if token else ""


def is_encrypted(value: str) -> bool:
    try:
        decrypt(value)
    except InvalidToken:
        return False
    return True


def rotate(token: str) -> str:
    """The token re-encrypted with the first key (MultiFernet.rotate)."""
    return fernet().rotate(token.encode()).decode() if token else ""


class UndecryptableSecret(str):
    """An empty string that remembers the stored token it could not open."""

    ciphertext: str

    def __new__(cls, ciphertext: str):
        obj = super().__new__(cls, "")
        obj.ciphertext = ciphertext
        return obj


def secret_is_set(value: str) -> bool:
    return bool(value) or isinstance(value, UndecryptableSecret)


class EncryptedTextField(models.TextField):
    """Clear text in Python, a Fernet token in the database. Not usable in lookups other
    than `= ""` (each encryption of the same text differs)."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        try:
            return decrypt(value)
        except InvalidToken:
            log.error("%s.%s of a row cannot be decrypted with FIELD_ENCRYPTION_KEYS (was a key dropped?)",
                      self.model.__name__, self.name)
            return UndecryptableSecret(value)

    def to_python(self, value):
        # loaddata hands over the token a dump holds; a form hands over clear text.
        if isinstance(value, UndecryptableSecret) or not isinstance(value, str) or not value:
            return value
        try:
            return decrypt(value)
        except InvalidToken:
            return value

    def get_prep_value(self, value):
        if isinstance(value, UndecryptableSecret):
            return value.ciphertext
        value = super().get_prep_value(value)
        return encrypt(value) if value else value

    def value_to_string(self, obj):
        """What serializers (dumpdata) write: the token, never the clear text."""
        return self.get_prep_value(self.value_from_object(obj))
