"""A staff member's test question to a tenant's bot, answered by an `ai` worker, not by
the web process: a model that hangs for LLM_DEADLINE seconds holds a Celery slot, never
a gunicorn worker (whose timeout is shorter, and which customers' webhooks need).

The page enqueues bots.tasks.answer_trial and polls a small JSON endpoint. The state
lives in Redis under an unguessable token for TRIAL_TTL seconds and then expires:
nothing about a test question is kept in the database.
"""

from __future__ import annotations

import json
import logging
import secrets
import time

import redis
from celery import current_app
from django.conf import settings

from bots.engines.base import Reply
from bots.handoff import handoff_answer
from bots.reply import answer_with_fallback, build_reply
from project.redis_clients import redis_client
from whatsapp.models import Direction, Message, Status, Tenant

log = logging.getLogger("bots.trial")

TRIAL_TTL = 600
# How long past the LLM deadline a trial may wait for a worker before the page says so.
QUEUE_GRACE_SECONDS = 30
PENDING, DONE, LOST, UNREACHABLE = "pending", "done", "lost", "unreachable"
ANSWER_TRIAL_TASK = "bots.tasks.answer_trial"


def _redis() -> redis.Redis:
    return redis_client(2, decode=True)


def _key(token: str) -> str:
    return f"bots:trial:{token}"


def start(tenant: Tenant, question: str, engine_name: str | None) -> str:
    """Record a pending trial and enqueue it; the token names it. Raises redis/kombu
    errors when the broker is down (the page says so)."""
    token = secrets.token_urlsafe(16)
    _save(token, {"tenant": tenant.pk, "status": PENDING, "question": question, "engine_choice": engine_name or "",
                  "started": time.time()})
    # By its frozen name, so that bots.tasks (which imports this module) is not imported here.
    current_app.send_task(ANSWER_TRIAL_TASK, (token, tenant.pk, engine_name or ""), expires=TRIAL_TTL)
    return token


def load(token: str, tenant: Tenant) -> dict | None:
    """The trial's state, if it exists and belongs to `tenant`. A pending trial that no
    worker answered in time is reported as lost."""
    raw = _redis().get(_key(token))
    state = json.loads(raw) if raw else None
    if not state or state.get("tenant") != tenant.pk:
        return None
    if state["status"] == PENDING and time.time() - state["started"] > settings.LLM_DEADLINE + QUEUE_GRACE_SECONDS:
        state["status"] = LOST
    return state


def _save(token: str, state: dict) -> None:
    _redis().set(_key(token), json.dumps(state), ex=TRIAL_TTL)


def run(token: str, tenant_id: int, engine_name: str) -> None:
    """The worker's side: answer the question and store the outcome for the page."""
    raw = _redis().get(_key(token))
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if not raw or tenant is None:
        return  # expired, or the tenant was deleted meanwhile
    state = json.loads(raw)
    try:
        state.update(ask(tenant, state["question"], engine_name or None))
    except Exception as exc:  # noqa: BLE001 - the page must say it failed, not wait
        log.exception("the bot test question failed")
        state.update(text="", engine="", latency_ms=None, error=f"the test itself failed ({type(exc).__name__})")
    state["status"] = DONE
    _save(token, state)


def ask(tenant: Tenant, question: str, engine_name: str | None = None) -> dict:
    """The answer the bot would give to `question` as a first message. The message is
    built in memory only: no row is saved, no delivery is enqueued."""
    message = Message(tenant=tenant, direction=Direction.INBOUND, body=question, media_type="text",
                      status=Status.RECEIVED)
    name = engine_name or tenant.bot_engine or settings.BOT_ENGINE
    errors: list[str] = []

    def engine_call(engine, tenant_, batch, history):
        reply, error = answer_with_fallback(engine, tenant_, batch, history)
        if error:
            errors.append(error)
        return reply

    reply, latency_ms = build_reply(tenant, [message], history=[], engine_name=name, answer=engine_call)
    if reply.handoff:  # what the customer would get: the handoff answer, then the bot pauses
        reply = Reply(handoff_answer(tenant).text, "handoff (the model handed off)")
    return {"text": reply.text, "engine": reply.engine, "latency_ms": latency_ms, "error": errors[0] if errors else ""}
