"""The sidecar's own state when it runs with SIDECAR_STATE_STORE=postgres (issue 15).

Django owns the schema; the Node sidecar reads and writes the rows directly with `pg`
(whatsapp/sidecar/src/state/postgres.js), each write in a transaction fenced by the
shard's fencing token (whatsapp_shard.fencing_token). Django itself never writes here:
the table holds what the file store keeps under SIDECAR_DATA_DIR, so that another host
can take a shard over.

`kind` says which store a row belongs to:
- `auth-creds` (key `creds`) and `auth-keys` (key `<type>/<id>`): Baileys' credentials and
  signal keys, serialised with Baileys' BufferJSON;
- `idempotency` (key: the idempotency key) and `idempotency-message` (key: WhatsApp's
  message id -> the idempotency key);
- `spool` and `spool-rejected` (key: the spool item's name): webhooks not yet accepted by
  Django, and those Django refused for good;
- `mark` (key `connected`): when the session last connected.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class SidecarState(models.Model):
    id = models.BigAutoField(primary_key=True)
    shard = models.TextField(help_text="The shard whose sidecar wrote the row (spool rows are resumed by shard).")
    tenant = models.TextField()
    kind = models.TextField()
    key = models.TextField()
    # JSON text, not jsonb: jsonb refuses the NUL character (\u0000), which a customer's
    # message in a spooled webhook may contain; the sidecar parses the text itself.
    value = models.TextField()
    # Set by the sidecar on every write (now()); the default covers rows written by hand.
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "whatsapp_sidecar_state"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "key"], name="sidecar_state_tenant_kind_key"),
        ]
        indexes = [
            models.Index(fields=["shard", "kind"], name="sidecar_state_shard_kind"),
            models.Index(fields=["kind", "updated_at"], name="sidecar_state_kind_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.kind} {self.key[:40]}"
