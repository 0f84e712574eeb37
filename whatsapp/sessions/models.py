"""A shard: a group of tenants whose WhatsApp Web sessions one owner runs (one lifecycle
worker with one sidecar, docs/SCALING.md). The row is the shard's lease: who owns it, until
when (by the database's clock), the fencing token of that ownership and where the owner's
sidecar listens. Imported by whatsapp.models (the app's models module)."""

from __future__ import annotations

from django.db import models


class Shard(models.Model):
    name = models.SlugField(max_length=50, primary_key=True)
    # '' when no process holds the lease.
    owner = models.TextField(blank=True, default="")
    # +1 every time a NEW owner takes the lease (never decreases): the sidecar refuses a
    # command or a write that carries another token, so a stale owner cannot act.
    fencing_token = models.BigIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    sidecar_url = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "whatsapp_shard"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
