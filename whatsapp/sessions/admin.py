"""Admin: the WhatsApp Web session of each tenant. Staff see its state as the lifecycle
worker's health check last recorded it (SessionState), scan the QR code to pair a phone,
and press start/stop/restart/logout, which only enqueue lifecycle tasks: the web process
never calls the sidecar. Viewing a session needs view access; its QR code (which pairs a
phone to the tenant's number) and its buttons need the `whatsapp.manage_session` permission."""

from __future__ import annotations

import segno
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.text import Truncator
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from whatsapp.models import SessionState, Shard, Tenant
from whatsapp.sessions.shards import enqueue_lifecycle

ACTIONS = {
    "start": "Start requested: the session connects, or shows a QR code to scan (an automatic stop is cleared).",
    "stop": "Stop requested (credentials are kept).",
    "restart": "Restart requested (it waits for sends in flight).",
    "logout": "Logout requested: the device is unlinked; the next start shows a new QR code.",
}
MANAGE_PERMISSION = "whatsapp.manage_session"

# Demo mode only: the sandbox's simulated phone scans the QR code (no phone needed).
SANDBOX_ACTIONS = {
    "simulate_scan": "Simulated scan requested: the sandbox phone pairs and the session connects in a moment.",
}


def sandbox_mode() -> bool:
    return settings.SIDECAR_TRANSPORT == "sandbox"


def available_actions() -> dict[str, str]:
    return {**ACTIONS, **SANDBOX_ACTIONS} if sandbox_mode() else ACTIONS


def qr_data_uri(qr: str) -> str:
    """The QR string WhatsApp gave, drawn as an SVG image (dark on white, with the quiet
    zone, so a phone camera reads it on any admin theme)."""
    return segno.make(qr, error="l").svg_data_uri(scale=6, border=4, dark="#000000", light="#ffffff")


def session_url(tenant_slug: str) -> str:
    """The Sessions page of one tenant (TenantAdmin links here)."""
    return reverse("admin:whatsapp_sessionstate_tenant", args=[tenant_slug])


@admin.register(SessionState)
class SessionStateAdmin(admin.ModelAdmin):
    # Few, short columns, so the list fits 1280 px beside the filters: the tenant links to
    # its session page, which has the rest (phone paired, reconnect attempts, whole alert).
    list_display = ("tenant", "status", "can_send", "last_disconnect", "short_alert", "checked")
    list_filter = ("status", "stop_reason", "can_send", "auth_paired")
    search_fields = ("tenant__slug", "tenant__name")
    list_select_related = ("tenant",)
    readonly_fields = [f.name for f in SessionState._meta.fields]
    change_list_template = "admin/whatsapp/sessionstate/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the lifecycle worker's record: without it a running session goes unwatched

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm(MANAGE_PERMISSION)

    @admin.display(description="Last disconnect")
    def last_disconnect(self, obj):
        if obj.last_disconnect_code is None and not obj.last_disconnect_reason:
            return "-"
        return f"{obj.last_disconnect_code or ''} {obj.last_disconnect_reason}".strip()

    @admin.display(description="Alert")
    def short_alert(self, obj):
        return Truncator(obj.alert).chars(70)

    @admin.display(description="Checked", ordering="updated_at")
    def checked(self, obj):
        return f"{timesince(obj.updated_at)} ago"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("tenant/<str:slug>/", view(self.session_view), name="whatsapp_sessionstate_tenant"),
            path(
                "tenant/<str:slug>/<str:action>/", view(require_POST(self.action_view)),
                name="whatsapp_sessionstate_action",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        state = get_object_or_404(SessionState.objects.select_related("tenant"), pk=object_id)
        return redirect(session_url(state.tenant.slug))

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context["without_session"] = Tenant.objects.filter(session_state__isnull=True).order_by("slug")
        return super().changelist_view(request, extra_context)

    def session_view(self, request, slug):
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenant = get_object_or_404(Tenant, slug=slug)
        state = SessionState.objects.filter(tenant=tenant).first()
        can_manage = self.has_manage_permission(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"WhatsApp session: {tenant.name}",
            "tenant": tenant,
            "state": state,
            "qr_waiting": bool(state and state.qr),
            "qr_image": qr_data_uri(state.qr) if can_manage and state and state.qr else "",
            "can_act": can_manage,
            "actions": list(ACTIONS),
            "sandbox": sandbox_mode(),
            "refresh_seconds": max(2, int(settings.SESSION_HEALTH_INTERVAL_SECONDS // 2)),
        }
        return render(request, "admin/whatsapp/sessionstate/session.html", context)

    def action_view(self, request, slug, action):
        if not self.has_manage_permission(request):
            raise PermissionDenied
        tenant = get_object_or_404(Tenant, slug=slug)
        actions = available_actions()
        if action not in actions:
            messages.error(request, f"Unknown action {action!r}.")
            return redirect(session_url(slug))
        try:
            enqueue_lifecycle(f"whatsapp.lifecycle.{action}", tenant)
        except Exception as exc:  # noqa: BLE001 - the broker is down: say so, do not 500
            messages.error(request, f"Could not enqueue the {action}: {exc}")
        else:
            messages.info(request, actions[action])
        return redirect(session_url(slug))


@admin.register(Shard)
class ShardAdmin(admin.ModelAdmin):
    """Who owns each shard right now (its lease row; docs/SCALING.md). Read-only: the
    lifecycle workers write it. A tenant is moved from its own page (field Shard)."""

    list_display = ("name", "owner_or_none", "fencing_token", "lease_expires_at", "sidecar_url", "tenants_count")
    readonly_fields = ("name", "owner", "fencing_token", "lease_expires_at", "sidecar_url", "created_at")

    def has_add_permission(self, request):
        return False  # a shard exists once a tenant is moved to it or a worker is started for it

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # its fencing token must never go back to 0

    @admin.display(description="Owner")
    def owner_or_none(self, obj):
        return obj.owner or "(none: no lifecycle worker holds it)"

    @admin.display(description="Tenants")
    def tenants_count(self, obj):
        query = Q(shard=obj)
        if obj.name == settings.SESSION_DEFAULT_SHARD:
            query |= Q(shard__isnull=True)
        return Tenant.objects.filter(query).count()
