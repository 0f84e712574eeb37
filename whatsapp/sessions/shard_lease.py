"""A shard's lease in its PostgreSQL row (whatsapp_shard), timed by the DATABASE's clock.

One conditional UPDATE takes it: when the shard is free, its lease has expired, or it is
already ours; a NEW owner adds 1 to the fencing token. The token is what the sidecar
checks on every command and every write of session state, so an owner that lost the
lease (frozen, cut off) cannot act after its successor took over. The token comes from
PostgreSQL, not Redis, because Redis here is not durable: a counter that restarts at 0
would give a new owner a token lower than a stale owner's.

The timing rules are those of whatsapp.sessions.lease (renew every TTL/6, give up TTL/2
after the last successful renewal was sent). `renewed_at` is taken before the UPDATE is
sent, and the row's expiry is now() (the transaction's start, later than that) plus the
TTL, so `expires_at` never overstates the lease."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import DatabaseError, InterfaceError, connections, transaction
from django.db.models import Case, F, Q, When
from django.db.models.functions import Now

from whatsapp.sessions.lease import Lease
from whatsapp.sessions.models import Shard

log = logging.getLogger("whatsapp.lease")


class ShardLease(Lease):
    errors = (DatabaseError, InterfaceError)

    def __init__(self, shard: str, owner: str, ttl_seconds: float, sidecar_url: str, using: str = "default") -> None:
        super().__init__(client=None, key=f"shard:{shard}", owner=owner, ttl_seconds=ttl_seconds)
        self.shard = shard
        self.sidecar_url = sidecar_url
        self.using = using
        self.fencing_token: int | None = None

    def _rows(self):
        return Shard.objects.using(self.using).filter(name=self.shard)

    def _fresh_connection(self) -> None:
        """A connection that failed is dropped, so the next try connects again (this runs
        in the lease's own threads, outside any request cycle that would do it)."""
        connection = connections[self.using]
        if connection.connection is not None and (connection.errors_occurred or not connection.is_usable()):
            connection.close()

    def _call(self, work):
        self._fresh_connection()
        try:
            return work()
        except self.errors:
            connections[self.using].close()
            raise

    def acquire(self) -> bool:
        def take() -> int | None:
            Shard.objects.using(self.using).get_or_create(name=self.shard)
            with transaction.atomic(using=self.using):
                taken = self._rows().filter(
                    Q(owner=self.owner) | Q(owner="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=Now())
                ).update(
                    fencing_token=Case(When(owner=self.owner, then=F("fencing_token")),
                                       default=F("fencing_token") + 1),
                    owner=self.owner,
                    lease_expires_at=Now() + timedelta(seconds=self.ttl),
                    sidecar_url=self.sidecar_url,
                )
                if not taken:
                    return None
                return self._rows().values_list("fencing_token", flat=True).get()

        sent = time.monotonic()
        token = self._call(take)
        if token is None:
            return False
        self.fencing_token = token
        self.renewed_at = sent
        return True

    def renew(self) -> bool:
        sent = time.monotonic()
        renewed = self._call(lambda: self._rows().filter(owner=self.owner, fencing_token=self.fencing_token).update(
            lease_expires_at=Now() + timedelta(seconds=self.ttl)))
        if renewed:
            self.renewed_at = sent
        return bool(renewed)

    def holder(self) -> str | None:
        row = self._call(lambda: self._rows().filter(lease_expires_at__gt=Now()).values_list("owner", flat=True).first())
        return row or None

    def remaining(self) -> float | None:
        left = self._call(lambda: self._rows().filter(lease_expires_at__gt=Now()).annotate(
            left=F("lease_expires_at") - Now()).values_list("left", flat=True).first())
        return left.total_seconds() if left is not None else None

    def _release(self) -> None:
        # The token stays: it never goes down. No owner, no address: senders wait.
        self._call(lambda: self._rows().filter(owner=self.owner).update(
            owner="", lease_expires_at=None, sidecar_url=""))
