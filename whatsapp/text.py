"""Phone numbers and message text helpers."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\D")


def normalize_phone(raw: str) -> str:
    """'whatsapp:+1 555-123 4567', '15551234567@s.whatsapp.net' -> '+15551234567'."""
    raw = (raw or "").strip()
    if raw.startswith("whatsapp:"):
        raw = raw[len("whatsapp:") :]
    raw = raw.split("@", 1)[0].split(":", 1)[0]
    digits = _DIGITS.sub("", raw)
    return f"+{digits}" if digits else ""


def mask(phone: str) -> str:
    """For humans and logs: only the last four digits."""
    return f"***{phone[-4:]}" if phone else ""


def split_text(text: str, limit: int) -> list[str]:
    """Split text into parts of at most `limit` characters, at whitespace, in order.
    A single word longer than the limit is cut (nothing else can be done with it)."""
    text = text.strip()
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = max(rest.rfind("\n", 0, limit + 1), rest.rfind(" ", 0, limit + 1))
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts
