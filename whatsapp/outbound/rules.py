"""The delivery rules: given what happened so far to a reply and how its latest attempt
failed, what the send task does next. Pure (no ORM, no Redis; the clock and the limits
are arguments) so that every rule is a unit test; whatsapp.outbound.delivery executes
the step: it keeps the claim, writes the attempts, calls the providers and records.

Rules:
- The reply is dead at once when its deadline has passed, when the customer opted out,
  and when the tenant has no provider left (a failure receipt after acceptance takes a
  provider out of this cycle).
- Providers are tried in the tenant's order. Within one provider:
  - transient: retry the same provider after its Retry-After, else Celery's exponential
    backoff with full jitter (capped, and always well below the broker's visibility
    timeout); after `retry_max` transient or ambiguous failures, fail over (exhausted);
  - paced: not a failure, wait for the session's send slot (`retry_after`), uncounted;
  - ambiguous and still unknown after asking the provider: retry in 5 s (the lookup is
    asked again); an attempt left unresolved longer than `ambiguous_resolve_seconds` is
    dead ("check before requeueing") rather than risk a second copy;
  - permanent, no template for a closed 24-hour window, undelivered after acceptance:
    fail over;
  - unavailable (breaker open, session not ready): fail over, and remember it only waits.
- When the last provider is passed over: if every provider only waited, retry when the
  first of them may take it again; otherwise the reply is dead with the reason of the
  last provider that failed for good.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery.utils.time import get_exponential_backoff_interval

from whatsapp.outbound.providers.base import ErrorKind

# Dead-letter reasons (the values of whatsapp.models.DeadLetter.Reason; kept as plain
# strings so that the rules do not load the ORM).
EXHAUSTED = "exhausted"
DEADLINE = "deadline"
PERMANENT = "permanent"
AMBIGUOUS = "ambiguous"
NO_TEMPLATE = "no_template"
NO_PROVIDER = "no_provider"
UNDELIVERED = "undelivered"
# Why a provider only waits (it failed nothing): the failover reasons of unavailable.
BREAKER_OPEN = "breaker_open"
NOT_READY = "not_ready"

# Failure codes the executor sets for facts that are not a vendor's error.
CODE_NO_TEMPLATE = "no_template"  # the 24-hour window is closed and no template can be sent
CODE_UNDELIVERED = "undelivered"  # a failure receipt came for the part (after acceptance)
CODE_BREAKER_OPEN = "breaker_open"  # skipped without a call

AMBIGUOUS_RECHECK_SECONDS = 5.0  # ask the provider again about an unknown outcome


@dataclass(frozen=True)
class Limits:
    """The settings the rules read (the executor builds it from django.conf.settings)."""

    retry_max: int = 5  # SEND_RETRY_MAX: transient or ambiguous failures per provider per cycle
    backoff_base: float = 2  # SEND_RETRY_BACKOFF_BASE
    backoff_cap: float = 300  # SEND_RETRY_BACKOFF_CAP
    visibility_timeout: float = 3600  # CELERY_VISIBILITY_TIMEOUT
    ambiguous_resolve_seconds: float = 120  # SEND_AMBIGUOUS_RESOLVE_SECONDS

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(
            retry_max=settings.SEND_RETRY_MAX,
            backoff_base=settings.SEND_RETRY_BACKOFF_BASE,
            backoff_cap=settings.SEND_RETRY_BACKOFF_CAP,
            visibility_timeout=settings.CELERY_VISIBILITY_TIMEOUT,
            ambiguous_resolve_seconds=settings.SEND_AMBIGUOUS_RESOLVE_SECONDS,
        )


@dataclass(frozen=True)
class Failure:
    """How the latest attempt failed (or why a provider is passed over without one)."""

    kind: ErrorKind
    error: str = ""  # what staff read as the last error
    code: str = ""  # the vendor's code, or one of the CODE_* facts above
    retry_after: float | None = None  # the provider's Retry-After, a pacing slot, a breaker's reopening
    # Set for an attempt a previous run left unresolved: when it started.
    pending_since: datetime | None = None


# Steps
@dataclass(frozen=True)
class Done:
    """Every part is with a provider."""


@dataclass(frozen=True)
class Retry:
    """Release the claim and try again in `after` seconds. `round_over`: the last
    provider was passed over too (every provider only waits)."""

    after: float
    error: str = ""
    round_over: bool = False


@dataclass(frozen=True)
class Failover:
    """Pass this provider over and try the next one. `waiting`: it failed nothing, it is
    only unavailable for now (and may take the reply again after `retry_after`)."""

    reason: str
    error: str = ""
    waiting: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class Dead:
    """A dead letter with `reason`. `round_over`: the last provider was passed over."""

    reason: str
    error: str = ""
    round_over: bool = False


Step = Done | Retry | Failover | Dead


@dataclass(frozen=True)
class History:
    """What the rules need to know of a reply, read by the executor from its rows."""

    providers: tuple[str, ...] = ()  # the tenant's providers left for this reply, in order
    provider: str = ""  # the provider the latest attempt went to
    attempts: int = 0  # every attempt of the reply so far (its attempt_count)
    # Transient or ambiguous failures per provider in this cycle, before the latest attempt.
    failures: Mapping[str, int] = field(default_factory=dict)
    passed_over: tuple[Failover, ...] = ()  # the providers before `provider` in this round
    deadline: datetime | None = None
    last_error: str = ""
    opted_out: bool = False
    opted_out_error: str = ""
    failed_error: str | None = None  # the latest failure receipt's error this cycle, if any
    limits: Limits = Limits()

    def failures_here(self) -> int:
        return self.failures.get(self.provider, 0)


def backoff(retries: int, limits: Limits) -> float:
    """Celery's exponential backoff with full jitter, capped, and always well below the
    broker's visibility timeout (a longer countdown would be delivered twice)."""
    cap = int(min(limits.backoff_cap, limits.visibility_timeout / 4))
    return max(
        0.5,
        get_exponential_backoff_interval(
            factor=limits.backoff_base, retries=retries, maximum=cap, full_jitter=True
        ),
    )


def first_step(history: History, now: datetime) -> Dead | None:
    """Before anything is sent: a reply that must not go out at all, or None."""
    if history.deadline and now > history.deadline:
        return Dead(DEADLINE, history.last_error or "delivery deadline passed")
    if history.opted_out:
        return Dead(PERMANENT, history.opted_out_error)
    if not history.providers:
        if history.failed_error is not None:
            return Dead(UNDELIVERED, history.failed_error)
        return Dead(NO_PROVIDER, "the tenant has no provider enabled")
    return None


def retries_left(history: History) -> int:
    """Transient or ambiguous failures `history.provider` may still have in this cycle."""
    return max(0, history.limits.retry_max - history.failures_here())


def next_step(history: History, error: Failure | None, now: datetime) -> Step:
    """What to do after the latest attempt to `history.provider` (None: it took every
    part), or after a provider was passed over without one."""
    if error is None:
        return Done()
    if error.kind == ErrorKind.AMBIGUOUS and error.pending_since is not None:
        # Left by an earlier run: nothing else is sent until it is told.
        if now - error.pending_since > timedelta(seconds=history.limits.ambiguous_resolve_seconds):
            return Dead(AMBIGUOUS, error.error)
        return Retry(AMBIGUOUS_RECHECK_SECONDS, "resolving")
    step = _for_this_provider(history, error)
    if not isinstance(step, Failover):
        return step
    if history.provider in history.providers[:-1]:
        return step
    return _round_over((*history.passed_over, step), history)


def _for_this_provider(history: History, error: Failure) -> Retry | Failover:
    kind = error.kind
    if kind == ErrorKind.PACED:
        # Not a failure: the session's send slot is later. It does not count as a retry.
        return Retry(_after(error.retry_after, history), error.error)
    if kind == ErrorKind.UNAVAILABLE:
        reason = BREAKER_OPEN if error.code == CODE_BREAKER_OPEN else NOT_READY
        return Failover(reason, error.error, waiting=True, retry_after=error.retry_after)
    if kind == ErrorKind.AMBIGUOUS:
        # Asked, and the provider still cannot tell: ask again soon.
        return Retry(AMBIGUOUS_RECHECK_SECONDS, error.error)
    if kind == ErrorKind.PERMANENT:
        reason = {CODE_NO_TEMPLATE: NO_TEMPLATE, CODE_UNDELIVERED: UNDELIVERED}.get(error.code, PERMANENT)
        return Failover(reason, error.error)
    # Transient (an ambiguous attempt resolved as "not sent" is one too).
    if history.failures_here() + 1 >= history.limits.retry_max:
        return Failover(EXHAUSTED, error.error)
    return Retry(error.retry_after or backoff(history.failures_here(), history.limits), error.error)


def _round_over(passed_over: tuple[Failover, ...], history: History) -> Retry | Dead:
    """Every provider was passed over."""
    failed = [f for f in passed_over if not f.waiting]
    if failed:
        last = failed[-1]
        return Dead(last.reason or PERMANENT, last.error, round_over=True)
    # Nothing failed for good; providers are only unavailable for now: wait for the first
    # one that may take it again (a breaker's half-open time).
    after = min(_after(f.retry_after, history) for f in passed_over)
    return Retry(after, passed_over[0].error, round_over=True)


def _after(retry_after: float | None, history: History) -> float:
    return retry_after if retry_after is not None else backoff(history.attempts, history.limits)
