"""The tenant's handoff and opt-out settings in the admin (one row per tenant), and its
reply templates (offered to staff when Twilio's 24-hour window is closed)."""

from __future__ import annotations

from django.contrib import admin

from whatsapp.inbox.models import InboxSettings, ReplyTemplate


@admin.register(InboxSettings)
class InboxSettingsAdmin(admin.ModelAdmin):
    list_display = ("tenant", "handoff_keywords", "resume_after_minutes", "stop_keywords", "start_keywords")
    fieldsets = (
        (None, {"fields": ("tenant",)}),
        ("Handoff", {"fields": ("handoff_keywords", "handoff_reply", "llm_hands_off", "resume_after_minutes")}),
        ("Opt-out", {"fields": ("stop_keywords", "start_keywords", "opt_out_reply", "opt_in_reply")}),
        ("Opening hours", {"fields": ("time_zone", "opening_hours", "outside_hours", "away_message")}),
    )


@admin.register(ReplyTemplate)
class ReplyTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "content_sid")
    list_filter = ("tenant",)
    search_fields = ("name", "text")
