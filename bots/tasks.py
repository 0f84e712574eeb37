"""The AI step: turn a customer's pending message(s) into one stored outbound answer,
then enqueue its delivery. Safe to run twice, and for several messages of one contact at
once: a message is answered by exactly one stored reply.

How a burst becomes one answer: see bots.dispatch. How concurrent runs cannot answer a
message twice: store_reply claims the whole batch with one conditional UPDATE
(received -> answered) and stores the reply only if it got every message of it; a run
that lost part of its batch to another run stores nothing and hands what is left to a
fresh task. A message that arrives while an answer is being generated is therefore either
in that answer's batch or answered by the next reply, never by both and never by none.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bots.dispatch import debounce_seconds, newer_pending
from bots.engines import get_engine
from bots.engines.base import Reply
from bots.engines.rules import RulesEngine, fallback_text
from bots.memory import conversation_before
from project.logging import log_context
from whatsapp.models import Contact, Direction, Message, Status
from whatsapp.outbound.delivery import new_outbound_fields

log = logging.getLogger("bots.reply")


@shared_task(name="bots.tasks.generate_reply", acks_late=True)
def generate_reply(inbound_id: int) -> int | None:
    inbound = Message.objects.select_related("tenant", "contact").filter(pk=inbound_id).first()
    if inbound is None or inbound.direction != Direction.INBOUND:
        return None
    with log_context(tenant=inbound.tenant.slug, message_id=inbound.pk, correlation_id=str(inbound.correlation_id)):
        if inbound.status != Status.RECEIVED:
            _ensure_reply_enqueued(inbound)
            return None
        newer = newer_pending(inbound)
        if newer is not None:
            log.info("debounce: the contact wrote again; message %s's task answers both", newer.pk)
            return None
        batch = pending_batch(inbound)
        if not batch:
            return None
        reply, latency_ms = build_reply(inbound.tenant, batch)
        return store_reply(batch, reply, latency_ms)


@shared_task(name="bots.tasks.answer_trial")
def answer_trial(token: str, tenant_id: int, engine_name: str) -> None:
    """A staff member's test question from the admin (bots.trial): on this queue so that
    a slow model holds a worker slot here, never a web worker."""
    from bots import trial

    trial.run(token, tenant_id, engine_name)


def pending_batch(inbound: Message) -> list[Message]:
    """The contact's messages that still wait for an answer, oldest first."""
    return list(
        Message.objects.select_related("tenant", "contact").filter(
            tenant=inbound.tenant, contact=inbound.contact, direction=Direction.INBOUND, status=Status.RECEIVED
        ).order_by("created_at", "pk")
    )


def build_reply(tenant, batch: list[Message], history: list[Message] | None = None,
                engine_name: str | None = None, answer=None) -> tuple[Reply, int]:
    """The answer to `batch` and how long it took (ms). Never fails for the engine's sake:
    a failing engine gives the rules engine's answer, marked "fallback". `answer` replaces
    answer_with_fallback (the admin's test page uses it to show the engine's error)."""
    started = time.monotonic()
    if all(m.media_type != "text" for m in batch):
        reply = Reply(tenant.non_text_reply or fallback_text(tenant), "non_text")
    else:
        engine_name = engine_name or tenant.bot_engine or settings.BOT_ENGINE
        if history is None:
            history = conversation_before(batch)
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


def store_reply(batch: list[Message], reply: Reply, latency_ms: int) -> int | None:
    """Store one outbound answer for the batch, unless another run answered any of it."""
    latest = batch[-1]
    outbound = None
    try:
        with transaction.atomic():
            # One writer per conversation at a time (SQLite locks the whole database anyway).
            Contact.objects.select_for_update().filter(pk=latest.contact_id).first()
            claimed = Message.objects.filter(pk__in=[m.pk for m in batch], status=Status.RECEIVED).update(
                status=Status.ANSWERED, updated_at=timezone.now()
            )
            if claimed == len(batch):
                outbound = Message.objects.create(
                    tenant=latest.tenant,
                    contact=latest.contact,
                    body=reply.text,
                    in_reply_to=latest,
                    correlation_id=latest.correlation_id,
                    engine=reply.engine,
                    engine_latency_ms=latency_ms,
                    **new_outbound_fields(),
                )
                reply_id = outbound.pk
                transaction.on_commit(lambda: _enqueue_send(reply_id))
            else:
                transaction.set_rollback(True)
    except IntegrityError:
        outbound = None  # another run stored the answer first
    if outbound is None:
        # Another run answered part of this batch while we were generating: our text may
        # repeat its answer, so drop it and answer whatever is still pending afresh.
        log.info("batch answered meanwhile by another run; answer dropped")
        _redrive_pending(latest)
        return None
    log.info("reply stored", extra={"reply_id": outbound.pk, "engine": reply.engine})
    return outbound.pk


def _redrive_pending(latest: Message) -> None:
    newest = (
        Message.objects.filter(
            tenant_id=latest.tenant_id, contact_id=latest.contact_id, direction=Direction.INBOUND,
            status=Status.RECEIVED,
        ).order_by("-created_at", "-pk").first()
    )
    if newest is None:
        return
    try:
        delay = debounce_seconds(latest.tenant)
        generate_reply.apply_async((newest.pk,), countdown=delay if delay > 0 else None)
    except Exception:  # noqa: BLE001
        log.exception("could not enqueue the reply; the reconciler will retry", extra={"pending_id": newest.pk})


def _ensure_reply_enqueued(inbound: Message) -> None:
    """A redelivered task for an answered message: make sure its answer is on its way
    (the reconciler covers this too, this is just faster)."""
    reply = Message.objects.filter(in_reply_to=inbound, direction=Direction.OUTBOUND, status=Status.QUEUED).first()
    if reply:
        _enqueue_send(reply.pk)


def _enqueue_send(outbound_id: int) -> None:
    from whatsapp.outbound.tasks import send_message

    try:
        send_message.delay(outbound_id)
    except Exception:  # noqa: BLE001
        log.exception("could not enqueue the send; the reconciler will retry", extra={"reply_id": outbound_id})
