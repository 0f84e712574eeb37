"""The AI step: turn a customer's message(s) into one stored outbound answer, then
enqueue its delivery. Safe to run twice: only one answer is ever stored."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.db import IntegrityError, transaction

from bots.engines import get_engine
from bots.engines.base import Reply
from bots.engines.rules import RulesEngine
from project.logging import log_context
from whatsapp.delivery import new_outbound_fields
from whatsapp.models import Contact, Direction, Message, Status

log = logging.getLogger("bots.reply")


@shared_task(acks_late=True)
def generate_reply(inbound_id: int) -> int | None:
    inbound = Message.objects.select_related("tenant", "contact").filter(pk=inbound_id).first()
    if inbound is None or inbound.direction != Direction.INBOUND:
        return None
    with log_context(tenant=inbound.tenant.slug, message_id=inbound.pk, correlation_id=str(inbound.correlation_id)):
        if inbound.status != Status.RECEIVED:
            _ensure_reply_enqueued(inbound)
            return None
        batch = pending_batch(inbound)
        reply, latency_ms = build_reply(inbound.tenant, batch)
        return store_reply(batch, reply, latency_ms)


def pending_batch(inbound: Message) -> list[Message]:
    """The contact's messages that still wait for an answer, oldest first."""
    return list(
        Message.objects.filter(
            tenant=inbound.tenant, contact=inbound.contact, direction=Direction.INBOUND, status=Status.RECEIVED
        ).order_by("created_at", "pk")
    )


def conversation(inbound: Message, limit: int) -> list[Message]:
    rows = Message.objects.filter(tenant=inbound.tenant, contact=inbound.contact, created_at__lt=inbound.created_at)
    return list(reversed(rows.order_by("-created_at")[:limit]))


def build_reply(tenant, batch: list[Message]) -> tuple[Reply, int]:
    started = time.monotonic()
    if all(m.media_type != "text" for m in batch):
        reply = Reply(tenant.non_text_reply or RulesEngine().reply(tenant, batch, []).text, "non_text")
    else:
        engine_name = tenant.bot_engine or settings.BOT_ENGINE
        history = conversation(batch[0], settings.BOT_MEMORY_MESSAGES)
        try:
            reply = get_engine(engine_name).reply(tenant, batch, history)
        except Exception as exc:  # noqa: BLE001 - the customer gets an answer whatever failed
            log.warning("engine %s failed, using the rules engine: %s", engine_name, exc)
            reply = RulesEngine().reply(tenant, batch, history)
            reply = Reply(reply.text, "fallback")
    latency_ms = int((time.monotonic() - started) * 1000)
    log.info("reply generated", extra={"engine": reply.engine, "latency_ms": latency_ms})
    return reply, latency_ms


def store_reply(batch: list[Message], reply: Reply, latency_ms: int) -> int | None:
    """Store one outbound answer for the batch, unless another run answered it first."""
    latest = batch[-1]
    try:
        with transaction.atomic():
            # One writer per conversation at a time (SQLite locks the whole database anyway).
            Contact.objects.select_for_update().filter(pk=latest.contact_id).first()
            still_waiting = Message.objects.filter(pk__in=[m.pk for m in batch], status=Status.RECEIVED)
            if still_waiting.filter(pk=latest.pk).count() == 0:
                return None
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
            still_waiting.update(status=Status.ANSWERED)
            transaction.on_commit(lambda: _enqueue_send(outbound.pk))
    except IntegrityError:
        return None  # another run stored the answer first
    log.info("reply stored", extra={"reply_id": outbound.pk})
    return outbound.pk


def _ensure_reply_enqueued(inbound: Message) -> None:
    """A redelivered task for an answered message: make sure its answer is on its way
    (the reconciler covers this too, this is just faster)."""
    reply = Message.objects.filter(in_reply_to=inbound, direction=Direction.OUTBOUND, status=Status.QUEUED).first()
    if reply:
        _enqueue_send(reply.pk)


def _enqueue_send(outbound_id: int) -> None:
    from whatsapp.tasks import send_message

    try:
        send_message.delay(outbound_id)
    except Exception:  # noqa: BLE001
        log.exception("could not enqueue the send; the reconciler will retry", extra={"reply_id": outbound_id})
