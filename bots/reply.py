"""Building one answer: the engine's reply to a batch of a contact's messages, or the
rules engine's when the engine fails (a customer always gets an answer). Used by the
reply task (bots.tasks) and by the admin's test page (bots.trial)."""

from __future__ import annotations

import logging
import time

from django.conf import settings

from bots.engines import get_engine
from bots.engines.base import Reply
from bots.engines.rules import RulesEngine, fallback_text
from bots.media_content import readable, sees_images
from bots.memory import conversation_before
from whatsapp.models import Message

log = logging.getLogger("bots.reply")


def build_reply(tenant, batch: list[Message], history: list[Message] | None = None,
                engine_name: str | None = None, answer=None) -> tuple[Reply, int]:
    """The answer to `batch` and how long it took (ms). Never fails for the engine's sake:
    a failing engine gives the rules engine's answer, marked "fallback". `answer` replaces
    answer_with_fallback (the admin's test page uses it to show the engine's error)."""
    started = time.monotonic()
    engine_name = engine_name or tenant.bot_engine or settings.BOT_ENGINE
    images_seen = sees_images(tenant, engine_name)
    if not any(readable(m, images_seen) for m in batch):
        reply = Reply(tenant.non_text_reply or fallback_text(tenant), "non_text")
    else:
        if history is None:
            history = conversation_before(batch) if get_engine(engine_name).reads_history else []
        if answer is not None:
            reply = answer(engine_name, tenant, batch, history)
        else:
            reply, _error = answer_with_fallback(engine_name, tenant, batch, history)
    latency_ms = int((time.monotonic() - started) * 1000)
    log.info("reply generated", extra={"engine": reply.engine, "latency_ms": latency_ms, "batch": len(batch)})
    return reply, latency_ms


def answer_with_fallback(engine_name: str, tenant, batch: list[Message],
                         history: list[Message]) -> tuple[Reply, str | None]:
    """The engine's answer, or the rules engine's marked "fallback" plus the reason."""
    try:
        return get_engine(engine_name).reply(tenant, batch, history), None
    except Exception as exc:  # noqa: BLE001 - the customer gets an answer whatever failed
        log.warning("engine %s failed, answering with the rules engine: %s", engine_name, exc)
        return Reply(RulesEngine().reply(tenant, batch, history).text, "fallback"), str(exc) or type(exc).__name__
