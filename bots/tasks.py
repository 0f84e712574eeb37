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
from collections.abc import Callable

from celery import shared_task
from django.db import IntegrityError, transaction
from django.utils import timezone

from bots import handoff, trial
from bots.dispatch import newer_in_batch, schedule_reply
from bots.engines.base import Reply
from bots.reply import build_reply
from project.compiled_query import CompiledRead
from project.logging import log_context
from whatsapp import pipeline
from whatsapp.inbox.state import bot_held, hold
from whatsapp.media.tasks import media_pending_since, media_waiting
from whatsapp.models import Contact, Direction, Message, Status

log = logging.getLogger("bots.reply")


# The customer's message, its tenant and contact, and what the screen reads of both (the
# tenant's inbox settings, the contact's conversation): one read, compiled once per
# process (project.compiled_query; compiling it was a fifth of the task's CPU, issue 16).
_INBOUND = CompiledRead(lambda pk: Message.objects.select_related(
    "tenant", "contact", "tenant__inbox_settings", "contact__conversation").filter(pk=pk))
# The contact's messages still waiting for an answer, with their pending media.
_PENDING = CompiledRead(lambda tenant_id, contact_id: Message.objects.annotate(
    media_pending_since=media_pending_since()).filter(
    tenant_id=tenant_id, contact_id=contact_id, direction=Direction.INBOUND, status=Status.RECEIVED,
).order_by("created_at", "pk"))


@shared_task(name="bots.tasks.generate_reply", acks_late=True)
def generate_reply(inbound_id: int) -> int | None:
    inbound = _INBOUND.get(inbound_id)
    if inbound is None or inbound.direction != Direction.INBOUND:
        return None
    with log_context(tenant=inbound.tenant.slug, message_id=inbound.pk, correlation_id=str(inbound.correlation_id)):
        if inbound.status != Status.RECEIVED:
            _ensure_reply_enqueued(inbound)
            return None
        batch = pending_batch(inbound)
        newer = newer_in_batch(inbound, batch)
        if newer is not None:
            log.info("debounce: the contact wrote again; message %s's task answers both", newer.pk)
            return None
        if not batch:
            return None
        if media_waiting(batch):
            log.info("media not ready yet; the media task hands the conversation over when it is")
            return None
        screened = handoff.screen(inbound.tenant, inbound.contact, batch)
        if screened.action == handoff.HOLD:
            held = handoff.keep_for_staff(inbound.contact, batch, screened.reply)
            log.info("bot paused, contact opted out or business closed: %d message(s) wait for staff", held)
            return None
        if screened.action == handoff.REPLY:
            screened.then()  # the state first: after a STOP nothing else may go out
            return store_reply(batch, screened.reply, 0, hold_if_paused=False)
        reply, latency_ms = build_reply(inbound.tenant, batch)
        if reply.handoff:
            # The model chose a person: the handoff answer and the pause are stored together
            # (nothing goes out if staff took over meanwhile).
            screened = handoff.model_hand_off(inbound.tenant, inbound.contact)
            return store_reply(batch, screened.reply, latency_ms, then=screened.then)
        return store_reply(batch, reply, latency_ms)


@shared_task(name="bots.tasks.answer_trial")
def answer_trial(token: str, tenant_id: int, engine_name: str) -> None:
    """A staff member's test question from the admin (bots.trial): on this queue so that
    a slow model holds a worker slot here, never a web worker."""
    trial.run(token, tenant_id, engine_name)


def pending_batch(inbound: Message) -> list[Message]:
    """The contact's messages that still wait for an answer, oldest first, each with
    media_pending_since (whatsapp.media.tasks.media_waiting reads it). They share the
    inbound's tenant and contact objects (joining both rows again per message was a tenth
    of this task's CPU, issue 16)."""
    batch = _PENDING.all(inbound.tenant_id, inbound.contact_id)
    for message in batch:
        message.tenant, message.contact = inbound.tenant, inbound.contact
    return batch


def store_reply(batch: list[Message], reply: Reply, latency_ms: int, hold_if_paused: bool = True,
                then: Callable[[], object] | None = None) -> int | None:
    """Store one outbound answer for the batch, unless another run answered any of it, or
    staff paused the bot (or the customer opted out) while it was being generated.
    `then` runs in the same transaction, once the batch is claimed (the model's handoff)."""
    latest = batch[-1]
    outbound = None
    try:
        with transaction.atomic():
            # One writer per conversation at a time (SQLite locks the whole database anyway).
            Contact.objects.select_for_update().filter(pk=latest.contact_id).first()
            if hold_if_paused and bot_held(latest.contact_id):
                log.info("bot paused meanwhile: answer dropped, %d message(s) wait for staff", hold(batch))
                return None
            claimed = Message.objects.filter(pk__in=[m.pk for m in batch], status=Status.RECEIVED).update(
                status=Status.ANSWERED, updated_at=timezone.now()
            )
            if claimed == len(batch):
                if then is not None:
                    then()
                outbound = Message.objects.new_outbound(
                    tenant=latest.tenant,
                    contact=latest.contact,
                    body=reply.text,
                    in_reply_to=latest,
                    correlation_id=latest.correlation_id,
                    engine=reply.engine,
                    engine_latency_ms=latency_ms,
                )
                pipeline.enqueue_send_on_commit(outbound.pk)
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
    if newest is not None:
        schedule_reply(newest)


def _ensure_reply_enqueued(inbound: Message) -> None:
    """A redelivered task for an answered message: make sure its answer is on its way
    (the reconciler covers this too, this is just faster)."""
    reply = Message.objects.filter(in_reply_to=inbound, direction=Direction.OUTBOUND, status=Status.QUEUED).first()
    if reply:
        pipeline.enqueue_send(reply.pk)
