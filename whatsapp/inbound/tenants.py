"""The tenant a Twilio webhook is for, from a short-lived cache in this process: every
webhook otherwise spends a PostgreSQL round trip reading the same row (issue 16's profile).

A save or delete of a tenant in this process drops its entry (signals). Another process
(the admin in another gunicorn worker, a management command) is seen within
WEBHOOK_TENANT_CACHE_SECONDS, and so is a change made with a queryset update(), which sends
no signal. Within that time the webhook may use a tenant's old debounce or accept for a
slug just renamed; a tenant deleted meanwhile makes the message's INSERT fail its foreign
key, and the caller drops the entry and looks again (uncached_tenant).

Nothing is cached inside a transaction (a test's, or a caller's atomic block): a row read
there may be rolled back. Unknown slugs are never cached (a new tenant is found at once).
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from whatsapp.models import Tenant

_lock = threading.Lock()
_cache: dict[str, tuple[float, Tenant]] = {}


def cached_tenant(slug: str) -> Tenant | None:
    ttl = settings.WEBHOOK_TENANT_CACHE_SECONDS
    now = time.monotonic()
    entry = _cache.get(slug)
    if entry is not None and entry[0] > now:
        return entry[1]
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is not None and ttl > 0 and not connection.in_atomic_block:
        with _lock:
            _cache[slug] = (now + ttl, tenant)
    return tenant


def uncached_tenant(slug: str) -> Tenant | None:
    """Drop the entry and read the row (after the cached one turned out to be gone)."""
    forget(slug)
    return Tenant.objects.filter(slug=slug).first()


def forget(slug: str | None = None) -> None:
    with _lock:
        if slug is None:
            _cache.clear()
        else:
            _cache.pop(slug, None)


@receiver(post_save, sender=Tenant, dispatch_uid="webhook-tenant-cache-save")
@receiver(post_delete, sender=Tenant, dispatch_uid="webhook-tenant-cache-delete")
def _tenant_changed(sender, instance: Tenant, **kwargs) -> None:
    # A rename leaves the old slug's entry behind too: drop every entry of this tenant.
    with _lock:
        for slug in [s for s, (_, t) in _cache.items() if t.pk == instance.pk or s == instance.slug]:
            del _cache[slug]
