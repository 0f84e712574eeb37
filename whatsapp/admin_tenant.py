"""The tenant page's "connect" parts for TenantAdmin: the webhook URLs to paste into Twilio,
links to the tenant's session, messages and rules, and the stop of its WhatsApp Web
session when staff turn WhatsApp Web off for it (a session left running would keep
receiving messages that nothing answers through it)."""

from __future__ import annotations

import logging
from functools import partial

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.urls import reverse

from whatsapp.models import Tenant
from whatsapp.sessions.admin import session_url
from whatsapp.sessions.moves import request_move
from whatsapp.sessions.shards import default_shard, enqueue_lifecycle

log = logging.getLogger("whatsapp.admin")


def public_url(request, path: str) -> str:
    """The URL Twilio must call for path: PUBLIC_BASE_URL (what Twilio signs) or, without
    it, this request's own address (proxy headers count only with TRUST_PROXY_HEADERS)."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + path
    return request.build_absolute_uri(path)


def connect_context(request, tenant: Tenant) -> dict:
    inbound = public_url(request, reverse("twilio-inbound", args=[tenant.slug]))
    links = [
        ("WhatsApp Web session", session_url(tenant.slug), "whatsapp.view_sessionstate"),
        ("Messages", reverse("admin:whatsapp_message_changelist") + f"?tenant__id__exact={tenant.pk}",
         "whatsapp.view_message"),
        ("Bot rules", reverse("admin:bots_rule_changelist") + f"?tenant__id__exact={tenant.pk}", "bots.view_rule"),
        ("Inbox", reverse("inbox-list", args=[tenant.slug]), "whatsapp.use_inbox"),
    ]
    return {
        "inbound_url": inbound,
        "status_url": public_url(request, reverse("twilio-status", args=[tenant.slug])),
        "from_request": not settings.PUBLIC_BASE_URL,
        "not_https": not inbound.startswith("https://"),
        # Only what this user may open (a change permission implies the view one).
        "links": [(label, url) for label, url, perm in links
                  if request.user.has_perm(perm) or request.user.has_perm(perm.replace(".view_", ".change_"))],
    }


def stop_session(request, tenant: Tenant) -> None:
    try:
        enqueue_lifecycle("whatsapp.lifecycle.stop", tenant)
    except Exception as exc:  # noqa: BLE001 - the broker is down: say so, do not 500
        log.warning("could not enqueue the session stop for %s: %s", tenant.slug, exc)
        messages.error(request, f"WhatsApp Web is off, but its session could not be stopped ({exc}): "
                                "press Stop on the session page.")
    else:
        messages.info(request, "WhatsApp Web is off for this tenant: its session is being stopped.")


def ask_move(request, tenant: Tenant, to_shard: str) -> None:
    try:
        said = request_move(tenant, to_shard)
    except Exception as exc:  # noqa: BLE001 - the broker is down: say so, do not 500
        log.warning("could not queue the move of %s: %s", tenant.slug, exc)
        messages.error(request, f"The shard was not changed: the move could not be queued ({exc}).")
    else:
        messages.info(request, said[:1].upper() + said[1:] + ".")


class TenantConnectAdminMixin:
    """For TenantAdmin (see the module docstring)."""

    change_form_template = "admin/whatsapp/tenant/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        tenant = self.get_object(request, unquote(object_id))
        if tenant is not None:
            extra_context = {**(extra_context or {}), "connect": connect_context(request, tenant)}
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if change and "shard" in form.changed_data:
            # Not a plain edit: the old shard's owner must stop the session before the
            # switch (whatsapp.sessions.moves). The move task switches the field.
            target = obj.shard_id or default_shard()
            obj.shard_id = form.initial.get("shard")
            transaction.on_commit(partial(ask_move, request, obj, target))
        super().save_model(request, obj, form, change)
        if change and "baileys_enabled" in form.changed_data and not obj.baileys_enabled:
            # After the commit: the lifecycle worker must see the tenant already switched off.
            transaction.on_commit(partial(stop_session, request, obj))
