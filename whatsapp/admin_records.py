"""The admin base for records (messages, attempts, media): shared by whatsapp.admin and
the rooms' admins without importing whatsapp.admin (which imports them)."""

from __future__ import annotations

from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    """A record of what happened, to read: nobody (superusers included) adds, edits or
    deletes one here. Delivery state changes only through the dead-letter actions, which
    check permissions and transitions; erasure and retention delete through their own paths."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
