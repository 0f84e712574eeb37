"""Admin side of erasure: the "Erase these contacts" action on contacts (with a
confirmation page) and the read-only erasure log. whatsapp.privacy does the work."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from whatsapp.models import ErasureLog
from whatsapp.privacy import ErasureRefused, erase


class ContactErasureMixin:
    """For ContactAdmin: the erase action, allowed with the whatsapp.erase_contact permission."""

    def has_erase_permission(self, request) -> bool:
        return request.user.has_perm("whatsapp.erase_contact")

    @admin.action(description="Erase these contacts and everything kept about them", permissions=["erase"])
    def erase_contacts(self, request, queryset):
        contacts = list(queryset.select_related("tenant"))
        if request.POST.get("post") != "yes":
            return TemplateResponse(request, "admin/whatsapp/contact/erase_confirmation.html", {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Erase contacts",
                "contacts": contacts,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            })
        for contact in contacts:
            # The last four digits only: this text travels in a cookie until it is shown.
            shown = f"contact …{(contact.phone or contact.lid_jid.split('@')[0])[-4:]}"
            try:
                record = erase(contact, requested_by=request.user.get_username(), via="admin")
            except ErasureRefused as exc:
                self.message_user(request, f"{shown} ({contact.tenant.slug}): {exc}", messages.ERROR)
                continue
            summary = ", ".join(f"{key} {value}" for key, value in record.counts.items())
            self.message_user(request, f"Erased {shown} ({record.tenant_slug}), erasure #{record.pk}: {summary}.")
        return None


@admin.register(ErasureLog)
class ErasureLogAdmin(admin.ModelAdmin):
    """What stays of an erasure: who, when, which tenant, how much. Never who was erased."""

    list_display = ("erased_at", "tenant_slug", "requested_by", "via", "counts")
    list_filter = ("via", "tenant_slug")
    readonly_fields = ("tenant", "tenant_slug", "requested_by", "via", "erased_at", "counts")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
