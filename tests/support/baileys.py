"""A tenant's WhatsApp Web session brought up the way staff do it (the lifecycle worker
and the sidecar must be running: see the lifecycle_worker fixture)."""

from __future__ import annotations

from tests.support.waiting import wait_for
from whatsapp.models import SessionState
from whatsapp.sessions import lifecycle

# The answer of the rule the baileys_tenant fixture gives the tenant ("hours, open").
HOURS_ANSWER = "We are open 8-18, Sunday to Friday."


def connect(tenant_slug: str) -> SessionState:
    """Staff press Start (the admin enqueues exactly this); the health check records it."""
    lifecycle.start.delay(tenant_slug)
    return wait_for(
        lambda: SessionState.objects.filter(tenant__slug=tenant_slug, status="connected", can_send=True).first(),
        20, message="the session to be connected",
    )
