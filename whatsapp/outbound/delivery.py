"""The delivery executor: it claims a reply, writes its attempts, calls the providers
through their breakers and pacing, asks whatsapp.outbound.rules (`next_step`, pure) what
to do about each outcome (done, retry, failover, dead letter) and records that. It knows
providers only through whatsapp.outbound.providers.base (send, lookup, can_send and the
kind of a ProviderError).

Invariants:
- a message is sent by whoever holds its claim (a conditional UPDATE), never by two;
- an attempt is written before the provider call ("started") and finished after it, so
  a worker that dies mid-call leaves a trace that is resolved before anything is re-sent;
- an attempt whose outcome is unknown is resolved with the provider (lookup) first; if
  it still cannot be told, the message is dead-lettered for a person rather than risk a
  second copy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from project.compiled_query import CompiledRead, CompiledUpdate
from project.logging import log_context
from whatsapp import metrics, pipeline
from whatsapp.inbox.optout import OPTED_OUT_ERROR, blocked_by_opt_out, contact_opted_out, note_permanent_refusal
from whatsapp.media.models import sent_media
from whatsapp.models import (
    DeadLetter,
    DeliveryAttempt,
    Direction,
    Message,
    Outcome,
    Provider,
    Status,
    new_cycle_fields,
)
from whatsapp.outbound import rules
from whatsapp.outbound.answer_parts import answer_parts, edited_fields, part_key, sent_and_unsent
from whatsapp.outbound.breakers import BreakerOpen, call_through_breaker
from whatsapp.outbound.providers import get_provider
from whatsapp.outbound.providers.base import (
    AMBIGUOUS,
    PACED,
    PERMANENT,
    TRANSIENT,
    UNAVAILABLE,
    OutgoingPart,
    ProviderError,
)
from whatsapp.outbound.templates import template_sid_for, template_variables_for

log = logging.getLogger("whatsapp.delivery")



@dataclass
class Decision:
    """What the send task does next: nothing (done) or retry after `retry_in` seconds."""

    retry_in: float | None = None


def limits() -> rules.Limits:
    return rules.Limits.from_settings(settings)


def backoff_countdown(retries: int) -> float:
    return rules.backoff(retries, limits())


# The claimed reply, its tenant and contact, and in the same read (as attributes): when
# its customer's message arrived (the end-to-end latency metric, _record_latency), whether
# it has no attempt yet (`untried`) and whether its contact opted out. Compiled once per
# process (project.compiled_query): compiling this read cost more CPU than running it.
_CLAIMED = CompiledRead(lambda pk: Message.objects.select_related("tenant", "contact").annotate(
    inbound_created_at=F("in_reply_to__created_at"),
    untried=~Exists(DeliveryAttempt.objects.filter(message_id=OuterRef("pk"))),
    contact_opted_out=contact_opted_out(),
).filter(pk=pk))


def claim(message_id: int) -> Message | None:
    """Take the message for sending. Exactly one caller wins: a queued message that is
    due, or a "sending" one whose claimant vanished (lease expired).

    The lease is written and compared by the database's clock (Now()), never a worker's:
    a host whose clock runs minutes fast would otherwise see a live claim as expired and
    send the reply a second time. (next_attempt_at stays on the worker's clock: the same
    worker wrote it and waits its countdown, and an early claim of a queued message sends
    nothing twice.)"""
    now = timezone.now()
    won = _CLAIM.run(message_id, now + timedelta(seconds=1), now, timedelta(seconds=settings.SEND_LEASE_SECONDS))
    if won != 1:
        return None
    return _CLAIMED.get(message_id)


# Compiled once per process (issue 16: building and compiling it was a fifth of a send).
_CLAIM = CompiledUpdate(lambda pk, due_by, now, lease: (
    Message.objects.filter(pk=pk, direction=Direction.OUTBOUND).filter(
        (Q(status=Status.QUEUED) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=due_by)))
        | Q(status=Status.SENDING, lease_until__lt=Now())),
    {"status": Status.SENDING, "lease_until": Now() + lease, "updated_at": now},
))


def deliver(message_id: int) -> Decision:
    message = claim(message_id)
    if message is None:
        log.info("send skipped: message not due or claimed elsewhere", extra={"message_id": message_id})
        return Decision()
    with log_context(
        tenant=message.tenant.slug, message_id=message.pk, correlation_id=str(message.correlation_id)
    ):
        try:
            return _deliver_claimed(message)
        except Exception:
            # A bug, not a provider failure: give the message back so nothing is lost.
            log.exception("delivery crashed; message released for a retry")
            _release(message, "internal error, see logs", backoff_countdown(message.attempt_count))
            return Decision(retry_in=backoff_countdown(message.attempt_count))


def _deliver_claimed(message: Message) -> Decision:
    now = timezone.now()
    # A reply with no attempt at all (its first send, the common case) has nothing to
    # adopt, resolve, count or avoid: `untried` is read with the claim instead of four
    # reads (issue 16). Under the claim no other worker can add one.
    untried = message.untried
    history = _history(message)
    dead = rules.first_step(history, now)
    if dead is not None:
        return _dead(message, dead.reason, dead.error)

    # Split to the smallest limit of the tenant's providers, so that a failover mid-answer
    # continues with the same parts.
    parts = answer_parts(message, part_limit(message.tenant))
    unresolved = None if untried else _resolve_unfinished_attempts(message, parts)
    if unresolved is not None:
        return unresolved

    if message.parts_sent >= len(parts):
        return _finish_sent(message)

    passed_over: tuple[rules.Failover, ...] = ()
    for name in history.providers:
        # Still none written (the provider before this one failed before its call): none to count.
        transient = 0 if untried and not message.attempt_count else _transient_so_far(message, name)
        history = replace(history, provider=name, failures={name: transient}, passed_over=passed_over)
        failure = _try_provider(message, get_provider(name), parts, history)
        step = rules.next_step(replace(history, attempts=message.attempt_count), failure, timezone.now())
        if isinstance(step, rules.Failover) or getattr(step, "round_over", False):
            metrics.FAILOVERS.labels(from_provider=name).inc()
            log.warning("failing over from %s: %s", name, failure.error or failure.code, extra={"provider": name})
        if isinstance(step, rules.Failover):
            passed_over += (step,)
            continue
        return _execute(message, step)
    raise AssertionError("the rules end every round with a step")  # pragma: no cover


def _history(message: Message) -> rules.History:
    """What the rules know of this reply, read from its rows (a claimed reply: it carries
    `untried` and `contact_opted_out`, read with it)."""
    providers = message.tenant.provider_order() if message.untried else providers_left(message)
    failed_error = None
    if not providers:
        failed = _cycle_attempts(message).filter(outcome=Outcome.FAILED).order_by("-started_at").first()
        failed_error = failed.error if failed else None
    opted_out = blocked_by_opt_out(message, message.contact_opted_out)
    return rules.History(
        providers=tuple(providers), attempts=message.attempt_count, deadline=message.deadline_at,
        last_error=message.last_error or "", opted_out=opted_out, opted_out_error=OPTED_OUT_ERROR,
        failed_error=failed_error, limits=limits(),
    )


def _execute(message: Message, step: rules.Step) -> Decision:
    """Record what the rules decided."""
    if isinstance(step, rules.Done):
        return _finish_sent(message)
    if isinstance(step, rules.Retry):
        return _schedule_retry(message, step)
    assert isinstance(step, rules.Dead)
    return _dead(message, step.reason, step.error)


def part_limit(tenant) -> int:
    """The smallest body limit of the tenant's providers (every part fits each of them)."""
    providers = tenant.provider_order() or [Provider.TWILIO]
    return min(get_provider(name).max_body for name in providers)


def _transient_so_far(message: Message, provider: str) -> int:
    return _cycle_attempts(message).filter(provider=provider, outcome__in=[Outcome.TRANSIENT, Outcome.AMBIGUOUS]).count()


def _try_provider(message: Message, provider, parts: list[str], history: rules.History) -> rules.Failure | None:
    """Send every remaining part through one provider: None when all are sent, else how
    it failed (for the rules)."""
    if rules.retries_left(history) <= 0:
        return rules.Failure(TRANSIENT, f"{provider.name}: retries exhausted")

    # Twilio's 24-hour window: outside it only an approved template may go out (the
    # provider knows its rule: None, a ContentSid, or "" when the tenant has none).
    template = provider.template_for(message)
    if template == "":
        return rules.Failure(PERMANENT, "24-hour window closed and no template configured", rules.CODE_NO_TEMPLATE)

    while message.parts_sent < len(parts):
        index = message.parts_sent
        part = _outgoing(message, parts, index, template or "")
        with transaction.atomic():  # one commit: the trace of the attempt and its count
            attempt = DeliveryAttempt.objects.create(
                message=message, provider=provider.name, outcome=Outcome.STARTED, part=index,
                template_sid=part.template_sid, key_generation=message.key_generation,
            )
            Message.objects.filter(pk=message.pk).update(attempt_count=message.attempt_count + 1)
        message.attempt_count += 1
        started = time.monotonic()
        log.info("attempt started", extra={"provider": provider.name, "part": index})
        try:
            provider_id = call_through_breaker(message.tenant.slug, provider.name, _checked_send, provider, part)
        except BreakerOpen as exc:
            _finish_attempt(attempt, started, Outcome.SKIPPED, str(exc), "breaker_open")
            return rules.Failure(UNAVAILABLE, str(exc), rules.CODE_BREAKER_OPEN, exc.retry_after)
        except ProviderError as exc:
            if exc.kind == PACED:
                # Not a failure: the session's send slot is later (the rules wait for it).
                _finish_attempt(attempt, started, Outcome.SKIPPED, str(exc), exc.code)
                return rules.Failure(PACED, str(exc), exc.code, exc.retry_after)
            outcome = {PERMANENT: Outcome.PERMANENT, AMBIGUOUS: Outcome.AMBIGUOUS}.get(exc.kind, Outcome.TRANSIENT)
            if exc.kind == UNAVAILABLE:
                outcome = Outcome.SKIPPED
            if _finish_attempt(attempt, started, outcome, str(exc), exc.code) == Outcome.ACCEPTED:
                # A status callback carrying this part's key settled it while we waited.
                _part_accepted(message, provider.name, attempt.provider_message_id, template)
                if template:
                    break
                continue
            if exc.kind == UNAVAILABLE:
                return rules.Failure(UNAVAILABLE, str(exc), exc.code, exc.retry_after)
            if exc.kind == AMBIGUOUS:
                resolved = _resolve(message, attempt, provider, part)
                if resolved == "sent":
                    continue
                if resolved == "unknown":
                    return rules.Failure(AMBIGUOUS, str(exc), exc.code)
                if resolved == "failed":
                    return rules.Failure(PERMANENT, attempt.error, rules.CODE_UNDELIVERED)
                # Certainly not sent: an ordinary transient failure.
            if exc.permanent:
                note_permanent_refusal(message, exc.code)  # 21610: the customer opted out
                if provider.wants_template(exc) and not template:
                    template = template_sid_for(message)  # the window closed since we looked
                    if template:
                        continue
                    return rules.Failure(PERMANENT, str(exc), rules.CODE_NO_TEMPLATE)
                return rules.Failure(PERMANENT, str(exc), exc.code)
            return rules.Failure(TRANSIENT, str(exc), exc.code, exc.retry_after)
        with transaction.atomic():
            if _finish_attempt(attempt, started, Outcome.ACCEPTED, provider_id=provider_id) == Outcome.FAILED:
                # Its failure receipt came before the answer: this provider cannot deliver it.
                return rules.Failure(PERMANENT, attempt.error, rules.CODE_UNDELIVERED)
            _part_accepted(message, provider.name, provider_id, template)
        if template:
            break  # a template replaces the whole answer
    return None


def _checked_send(provider, part: OutgoingPart) -> str:
    if not provider.can_send(part.message):
        raise ProviderError(f"{provider.name} cannot send now", kind=UNAVAILABLE, code="not_ready")
    return provider.send(part)


def _part_accepted(message: Message, provider: str, provider_id: str, template: str | None) -> None:
    fields = {"parts_sent": message.parts_sent + 1, "provider": provider}
    if not message.provider_message_id:
        fields["provider_message_id"] = provider_id
    if template:
        fields["template_sid"] = template
    Message.objects.filter(pk=message.pk).update(**fields)
    for key, value in fields.items():
        setattr(message, key, value)
    log.info("attempt accepted", extra={"provider": provider, "part": message.parts_sent - 1})


def _finish_attempt(attempt, started, outcome, error="", code="", provider_id="") -> str:
    """Record the outcome of a started attempt and return the outcome it ends with: a
    status callback carrying the part's key may have settled it first (conditional
    UPDATE), and then that one stands."""
    attempt.duration_ms = int((time.monotonic() - started) * 1000)
    fields = {"duration_ms": attempt.duration_ms, "outcome": outcome, "error": error[:2000],
              "error_code": str(code)[:20], "provider_message_id": provider_id or ""}
    if not DeliveryAttempt.objects.filter(pk=attempt.pk, outcome=Outcome.STARTED).update(**fields):
        attempt.refresh_from_db(fields=["outcome", "provider_message_id", "error", "error_code"])
        log.info("attempt already settled by a receipt: %s", attempt.outcome, extra={"provider": attempt.provider})
        return attempt.outcome
    for key, value in fields.items():
        setattr(attempt, key, value)
    metrics.ATTEMPTS.labels(provider=attempt.provider, outcome=outcome).inc()
    log.info(
        "attempt finished: %s",
        outcome,
        extra={"provider": attempt.provider, "duration_ms": attempt.duration_ms, "error_code": attempt.error_code},
    )
    return outcome


def _resolve(message, attempt, provider, part) -> str:
    """Ask the provider what became of this part: "sent", "not_sent", "failed" (its
    failure receipt came first) or "unknown". A status callback that carries the part's
    key may settle the attempt meanwhile; every write here is conditional on the attempt
    still being ambiguous, and a receipt's verdict wins."""
    try:
        provider_id = provider.lookup(part, attempt.started_at - timedelta(seconds=5))
    except ProviderError as exc:
        log.warning("could not resolve an unknown outcome yet: %s", exc, extra={"provider": provider.name})
        return "unknown"
    pending = DeliveryAttempt.objects.filter(pk=attempt.pk, outcome=Outcome.AMBIGUOUS)
    if provider_id:
        written = pending.update(outcome=Outcome.ACCEPTED, provider_message_id=provider_id,
                                 error=attempt.error + " (resolved: it was sent)")
    else:
        written = pending.update(outcome=Outcome.TRANSIENT, error=attempt.error + " (resolved: it was not sent)")
    attempt.refresh_from_db(fields=["outcome", "provider_message_id", "error", "error_code"])
    if not written:
        log.info("unknown outcome settled by a receipt: %s", attempt.outcome, extra={"provider": provider.name})
    if attempt.outcome == Outcome.ACCEPTED:
        _part_accepted(message, provider.name, attempt.provider_message_id, part.template_sid or None)
        return "sent"
    return "failed" if attempt.outcome == Outcome.FAILED else "not_sent"


def _outgoing(message: Message, parts: list[str], index: int, template_sid: str) -> OutgoingPart:
    """Part `index` of the answer, with its idempotency key (a template replaces the text)."""
    return OutgoingPart(
        message=message,
        to=message.contact.phone,
        text=parts[index] if index < len(parts) else "",
        key=part_key(message, index),
        template_sid=template_sid,
        template_variables=template_variables_for(message, template_sid),
        media=sent_media(message) if index == 0 and not template_sid else None,  # a template replaces it
    )


def _resolve_unfinished_attempts(message: Message, parts: list[str]) -> Decision | None:
    """An attempt left "started" (the worker died mid-call) or "ambiguous" must be
    resolved before anything is sent again. Only this key generation's: an earlier
    cycle's unknown outcome was seen by staff, who requeued it (a new generation)."""
    _adopt_settled_parts(message)
    pending = list(
        message.attempts.filter(
            outcome__in=[Outcome.STARTED, Outcome.AMBIGUOUS], key_generation=message.key_generation
        ).order_by("started_at")
    )
    for attempt in pending:
        provider = get_provider(attempt.provider)
        part = _outgoing(message, parts, attempt.part, attempt.template_sid)
        if attempt.outcome == Outcome.STARTED:
            attempt.error = "worker stopped during the provider call"
            if DeliveryAttempt.objects.filter(pk=attempt.pk, outcome=Outcome.STARTED).update(
                outcome=Outcome.AMBIGUOUS, error=attempt.error
            ):
                attempt.outcome = Outcome.AMBIGUOUS
            else:
                _adopt_settled_parts(message)  # a receipt settled it just now
                continue
        if attempt.part < message.parts_sent:
            attempt.outcome = Outcome.ACCEPTED
            attempt.save(update_fields=["outcome"])
            continue
        resolved = _resolve(message, attempt, provider, part)
        if resolved == "unknown":
            unknown = rules.Failure(
                AMBIGUOUS, f"{attempt.provider} may have sent part {attempt.part}; check before requeueing",
                pending_since=attempt.started_at,
            )
            history = rules.History(provider=attempt.provider, attempts=message.attempt_count, limits=limits())
            return _execute(message, rules.next_step(history, unknown, timezone.now()))
    return None


def _cycle_start(message: Message):
    """When the reply's current delivery cycle began (models.new_cycle_fields); its creation
    for a row written without one."""
    return message.cycle_started_at or message.created_at


def _cycle_attempts(message: Message):
    return message.attempts.filter(started_at__gte=_cycle_start(message))


def _adopt_settled_parts(message: Message) -> None:
    """A status callback that carried a part's key settled its pending attempt as
    accepted (the provider has the part); count the part as sent, so it is not sent again."""
    settled = {
        a.part: a for a in _cycle_attempts(message).filter(outcome=Outcome.ACCEPTED, part__gte=message.parts_sent)
    }
    while message.parts_sent in settled:
        attempt = settled[message.parts_sent]
        _part_accepted(message, attempt.provider, attempt.provider_message_id, attempt.template_sid or None)
        if attempt.template_sid:
            break


def providers_left(message: Message) -> list[str]:
    """The tenant's providers in order, less those that reported a failure after they
    had accepted part of this reply in this cycle: they are not tried again for it."""
    failed = set(_cycle_attempts(message).filter(outcome=Outcome.FAILED).values_list("provider", flat=True))
    return [name for name in message.tenant.provider_order() if name not in failed]


def _unhandled_failures(attempts) -> list[DeliveryAttempt]:
    """Failed attempts (a failure receipt after acceptance) that no later acceptance of
    the same part, through another provider, has made good yet."""
    return _not_made_good(list(attempts.filter(outcome=Outcome.FAILED)))


def _not_made_good(failed: list[DeliveryAttempt]) -> list[DeliveryAttempt]:
    return [
        a for a in failed
        if not DeliveryAttempt.objects.filter(message_id=a.message_id, part=a.part, outcome=Outcome.ACCEPTED,
                                              started_at__gt=a.started_at).exists()
    ]


# _cycle_attempts(message).filter(outcome=FAILED), read after every send: compiled (issue 16).
_FAILED_IN_CYCLE = CompiledRead(lambda pk, since: DeliveryAttempt.objects.filter(
    message_id=pk, started_at__gte=since, outcome=Outcome.FAILED))


def fail_after_acceptance(message: Message, provider: str, provider_message_id: str, part: int | None,
                          code: str, reason: str) -> bool | None:
    """A provider accepted part of this reply, then reported it failed or undelivered.
    That provider is not tried again for this reply: the next provider of the tenant
    sends it from that part on, or, with none left, it becomes a dead letter with the
    provider's reason. While a worker still holds the reply, the failure is only recorded
    on the attempt and the worker acts on it when it finishes (_finish_sent); both sides
    check after writing, and the move from "sent" is conditional, so exactly one acts.
    Returns whether anything changed; None when no attempt of that provider matches."""
    with transaction.atomic():
        matching = message.attempts.filter(provider=provider)
        matching = matching.filter(provider_message_id=provider_message_id) if provider_message_id else matching.filter(
            part=part)
        recorded = matching.filter(outcome=Outcome.ACCEPTED).update(
            outcome=Outcome.FAILED, error_code=str(code)[:20], error=reason[:2000]
        )
        failed = _unhandled_failures(matching)
        if not failed:
            return None
        message.refresh_from_db(fields=["status", "parts_sent"])
        if message.status != Status.SENT:
            return bool(recorded)  # the worker holding it acts on it when it finishes
        if providers_left(message):
            now = timezone.now()
            moved = message.move_to(
                Status.QUEUED, parts_sent=min(a.part for a in failed), provider_message_id=None, lease_until=None,
                next_attempt_at=None, last_error=reason[:2000], error_code=str(code)[:20],
                deadline_at=now + timedelta(seconds=settings.SEND_DEADLINE_SECONDS),
            )
        else:
            _dead(message, DeadLetter.Reason.UNDELIVERED, reason)
            moved = message.status == Status.DEAD
        if not moved:
            transaction.set_rollback(True)  # another receipt moved it first: leave everything as it was
            return False
    metrics.REPLIES.labels(provider=provider, outcome="failed").inc()
    if message.status == Status.QUEUED:
        metrics.FAILOVERS.labels(from_provider=provider).inc()
        log.warning("failing over after a failure receipt from %s: %s", provider, reason,
                    extra={"provider": provider, "message_id": message.pk})
        pipeline.enqueue_send_on_commit(message.pk)
    return True


def _finish_sent(message: Message) -> Decision:
    now = timezone.now()
    message.move_to(Status.SENT, sent_at=now, lease_until=None, next_attempt_at=None, last_error="")
    for failed in _not_made_good(_FAILED_IN_CYCLE.all(message.pk, _cycle_start(message))):
        # A failure receipt for a part came while this worker still held the reply.
        fail_after_acceptance(message, failed.provider, failed.provider_message_id, failed.part,
                              failed.error_code, failed.error)
        return Decision()
    if message.in_reply_to_id:
        _record_latency(message, now)
    log.info("message sent", extra={"provider": message.provider})
    metrics.REPLIES.labels(provider=message.provider, outcome="sent").inc()
    return Decision()


def _record_latency(message: Message, now) -> None:
    inbound_at = message.inbound_created_at
    if inbound_at:
        metrics.END_TO_END.observe((now - inbound_at).total_seconds())


def _schedule_retry(message: Message, step: rules.Retry) -> Decision:
    _release(message, step.error, step.after)
    metrics.RETRIES.inc()
    log.info("retry scheduled in %.1fs: %s", step.after, step.error)
    return Decision(retry_in=step.after)


def _release(message: Message, error: str, retry_in: float) -> None:
    message.move_to(
        Status.QUEUED,
        lease_until=None,
        next_attempt_at=timezone.now() + timedelta(seconds=retry_in),
        last_error=(error or "")[:2000],
    )


def _dead(message: Message, reason: str, error: str) -> Decision:
    with transaction.atomic():
        if not message.move_to(Status.DEAD, lease_until=None, last_error=(error or "")[:2000]):
            return Decision()
        last_provider = message.attempts.order_by("-started_at").values_list("provider", flat=True).first() or ""
        DeadLetter.objects.create(
            message=message,
            requeued_from=message.dead_letters.filter(resolution=DeadLetter.Resolution.REQUEUED)
            .order_by("-resolved_at").first(),
            reason=reason,
            last_error=error or "",
            attempt_count=message.attempt_count,
            last_provider=last_provider,
        )
    # Counted under the provider that accepted it, else the last one tried (as the dashboard shows it).
    metrics.REPLIES.labels(provider=message.provider or last_provider or "none_tried", outcome="dead").inc()
    log.error("dead letter: %s: %s", reason, error, extra={"reason": reason})
    return Decision()


@transaction.atomic
def requeue(dead_letter: DeadLetter, user=None, new_body: str | None = None, note: str | None = None) -> bool:
    """A fresh delivery cycle with a new key generation (the same message, new part keys):
    staff who requeue have decided, so an earlier unknown outcome no longer blocks it.
    `new_body` replaces the part of the answer not yet sent (whatsapp.outbound.answer_parts); the
    dead letter keeps the text before and after, and the note. Safe to click twice: only
    an open dead letter is requeued, under a row lock."""
    dl = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
    if dl.resolved_at is not None or dl.kind != DeadLetter.Kind.OUTBOUND:
        return False
    message = Message.objects.select_related("tenant").select_for_update(of=("self",)).get(pk=dl.message_id)
    fields = new_cycle_fields()
    fields.update(
        attempt_count=0, next_attempt_at=None, lease_until=None, last_error="",
        key_generation=message.key_generation + 1,
    )
    update = ["resolved_at", "resolved_by", "resolution", "note"]
    if new_body is not None and new_body.strip():
        limit = part_limit(message.tenant)
        _sent, unsent = sent_and_unsent(message, limit)
        if new_body.strip() != unsent.strip():
            dl.original_body, dl.edited_body = message.body, new_body.strip()
            fields.update(edited_fields(message, new_body, limit))
            update += ["original_body", "edited_body"]
    if not message.move_to(Status.QUEUED, **fields):
        return False
    dl.resolved_at = timezone.now()
    dl.resolved_by = user
    dl.resolution = DeadLetter.Resolution.REQUEUED
    dl.note = note if note is not None else dl.note
    dl.save(update_fields=update)
    pipeline.enqueue_send_on_commit(message.pk)
    return True


@transaction.atomic
def discard(dead_letter: DeadLetter, user=None, note: str = "") -> bool:
    dl = DeadLetter.objects.select_for_update().get(pk=dead_letter.pk)
    if dl.resolved_at is not None:
        return False
    if dl.message_id:  # a refused inbound message was never stored
        Message.objects.get(pk=dl.message_id).move_to(Status.DISCARDED)
    dl.resolved_at = timezone.now()
    dl.resolved_by = user
    dl.resolution = DeadLetter.Resolution.DISCARDED
    dl.note = note or dl.note
    dl.save(update_fields=["resolved_at", "resolved_by", "resolution", "note"])
    return True
