"""Retention: forget old conversations. Messages (with their delivery attempts),
resolved dead letters and contacts with nothing left are deleted once they are older than
the tenant's retention_days (RETENTION_DAYS by default).

Never deleted, whatever their age: an inbound message still waiting for its answer, a
reply still being delivered (queued, sending) or dead (its dead letter is open), a
message with an open or recently resolved dead letter, and an inbound message whose reply
is not finished. A message counts as old only if it was neither created nor changed
within the window (a late receipt keeps it).

Deletion goes in small batches, each its own short transaction that deletes rows by
primary key (row locks only, never a table lock) and skips rows another transaction holds;
a run stops after RETENTION_MAX_SECONDS and the next one goes on where it stopped."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from whatsapp.models import Contact, DeadLetter, Message, Status, Tenant

log = logging.getLogger("whatsapp.retention")

# Statuses after which nothing more happens to a message (a receipt may still move a
# "sent" one, which updates it and so keeps it another window).
FINISHED = [
    Status.ANSWERED, Status.SENT, Status.DELIVERED, Status.READ, Status.FAILED, Status.UNDELIVERED,
    Status.DISCARDED,
]


def retention_days(tenant: Tenant) -> int:
    return tenant.retention_days or settings.RETENTION_DAYS


def expired_messages(tenant: Tenant, cutoff: datetime) -> QuerySet[Message]:
    dead_letter_in_use = DeadLetter.objects.filter(message=OuterRef("pk")).filter(
        Q(resolved_at__isnull=True) | Q(resolved_at__gte=cutoff)
    )
    unfinished_reply = Message.objects.filter(in_reply_to=OuterRef("pk")).exclude(status__in=FINISHED)
    return (
        Message.objects.filter(tenant=tenant, created_at__lt=cutoff, updated_at__lt=cutoff, status__in=FINISHED)
        .exclude(Exists(dead_letter_in_use))
        .exclude(Exists(unfinished_reply))
    )


def expired_dead_letters(tenant: Tenant, cutoff: datetime) -> QuerySet[DeadLetter]:
    """Resolved long ago, of a message that itself must stay (it died again since)."""
    return DeadLetter.objects.filter(message__tenant=tenant, resolved_at__lt=cutoff)


def expired_contacts(tenant: Tenant, cutoff: datetime) -> QuerySet[Contact]:
    return Contact.objects.filter(tenant=tenant, created_at__lt=cutoff).exclude(
        Exists(Message.objects.filter(contact=OuterRef("pk")))
    ).filter(Q(last_twilio_inbound_at__isnull=True) | Q(last_twilio_inbound_at__lt=cutoff)).exclude(
        # A pause staff set, or the customer's opt-out, must outlive the messages (whatsapp.inbox).
        Q(conversation__bot_paused=True) | Q(conversation__opted_out=True)
    )


def purge(
    now: datetime | None = None,
    batch_size: int | None = None,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Delete what every tenant keeps past its window, batch by batch, until done or out
    of time. Returns the counts and whether everything due was deleted."""
    now = now or timezone.now()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    deadline = clock() + (settings.RETENTION_MAX_SECONDS if max_seconds is None else max_seconds)
    deleted: Counter[str] = Counter()
    complete = True
    for tenant in Tenant.objects.order_by("pk"):
        cutoff = now - timedelta(days=retention_days(tenant))
        for queryset in (
            expired_messages(tenant, cutoff), expired_dead_letters(tenant, cutoff), expired_contacts(tenant, cutoff)
        ):
            complete = _drain(queryset, batch_size, lambda: clock() > deadline, deleted)
            if not complete:
                break
        if not complete:
            break
    result = {
        "messages": deleted[_label(Message)], "attempts": deleted["whatsapp.DeliveryAttempt"],
        "dead_letters": deleted[_label(DeadLetter)], "contacts": deleted[_label(Contact)], "complete": complete,
    }
    if any(value for key, value in result.items() if key != "complete"):
        log.info("retention deleted old rows: %s", result)
    return result


def _drain(queryset: QuerySet, batch_size: int, out_of_time: Callable[[], bool], deleted: Counter) -> bool:
    """Delete the queryset's rows batch by batch; False if time ran out first."""
    while not out_of_time():
        counts = _delete_batch(queryset, batch_size)
        deleted.update(counts)
        if counts.get(_label(queryset.model), 0) < batch_size:
            return True
    return False


def _label(model) -> str:
    return model._meta.label


def _delete_batch(queryset: QuerySet, batch_size: int) -> dict[str, int]:
    with transaction.atomic():
        # Rows a worker holds right now are skipped, not waited for; a later run takes them.
        ids = list(
            queryset.order_by("pk").select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True)[
                :batch_size
            ]
        )
        if not ids:
            return {}
        # Deleting by primary key: the cascade removes a message's attempts and dead
        # letters, and unlinks replies that stay (in_reply_to is SET_NULL).
        _total, per_model = queryset.model.objects.filter(pk__in=ids).delete()
        return per_model
