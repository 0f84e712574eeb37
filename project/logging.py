"""Structured logging: a context (tenant, message id, correlation id) that follows a
message through web, ai and send, JSON lines in production, and phone numbers masked
in every line whatever the caller passed in."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

# Never mutated in place (log_context sets a new dict), so a shared default is safe.
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039

CONTEXT_FIELDS = ("tenant", "message_id", "correlation_id", "provider", "task")
# Seven or more digits, optionally after "+" or inside "whatsapp:+..." / "...@s.whatsapp.net".
_PHONE = re.compile(r"(?<![\w.])\+?\d[\d ]{5,}(\d{4})(?!\d)")


def mask_phone(text: str) -> str:
    """Keep only the last four digits of anything that looks like a phone number."""
    return _PHONE.sub(lambda m: "***" + m.group(1), text)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields to every log line written inside the block (and in tasks it enqueues,
    see project.celery)."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return mask_phone(json.dumps(line, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        text = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            text += f" [{extras}]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return mask_phone(text)
