"""Admin for staff: tenants, conversations, delivery timelines and the dead-letter list."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.debug import sensitive_post_parameters

from bots.admin_views import BotTestAdminMixin
from bots.llm_url import BlockedURL, validate_tenant_llm_url
from project.encryption import secret_is_set
from whatsapp import delivery
from whatsapp.admin_privacy import ContactErasureMixin
from whatsapp.admin_tenant import TenantConnectAdminMixin
from whatsapp.models import Contact, DeadLetter, DeliveryAttempt, Message, Tenant


class TenantForm(forms.ModelForm):
    # Write-only (stored encrypted): the page says whether a key is set, never shows it.
    llm_api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    clear_llm_api_key = forms.BooleanField(required=False, label="Clear the stored LLM API key")

    class Meta:
        model = Tenant
        exclude: list[str] = []  # the admin's fieldsets choose what is shown

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = bool(self.instance.pk) and secret_is_set(self.instance.llm_api_key)
        self.initial["llm_api_key"] = ""  # not even in the form's memory; "changed" only when typed
        self.fields["llm_api_key"].help_text = (
            f"Currently: {'set' if stored else 'not set'}. Leave empty to keep it. Without a key of its own, "
            "the tenant uses LLM_API_KEY, and only with the server's LLM_BASE_URL."
        )

    def clean_llm_api_key(self):
        value = self.cleaned_data.get("llm_api_key")
        return value or (self.instance.llm_api_key if self.instance.pk else "")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_llm_api_key"):
            if self.data.get(self.add_prefix("llm_api_key")):
                self.add_error("llm_api_key", "Either type a new key or clear the stored one, not both.")
            else:
                cleaned["llm_api_key"] = ""
        return cleaned

    def clean_llm_base_url(self):
        url = self.cleaned_data.get("llm_base_url", "").strip()
        if url:
            try:
                validate_tenant_llm_url(url)
            except BlockedURL as exc:
                raise forms.ValidationError(str(exc)) from None
        return url


@admin.register(Tenant)
class TenantAdmin(TenantConnectAdminMixin, BotTestAdminMixin, admin.ModelAdmin):
    form = TenantForm
    list_display = ("slug", "name", "twilio_number_masked", "baileys_enabled", "twilio_enabled", "engine", "created_at")
    list_filter = ("baileys_enabled", "twilio_enabled", "bot_engine")
    search_fields = ("slug", "name")
    fieldsets = (
        (None, {"fields": ("slug", "name")}),
        ("Providers", {"fields": (
            "baileys_enabled", "twilio_enabled", "twilio_number", "twilio_template_sid",
            "twilio_template_variables", "baileys_sends_per_minute",
        )}),
        ("Bot", {"fields": (
            "bot_engine", "greeting", "fallback_reply", "non_text_reply", "system_prompt", "business_facts",
            "debounce_seconds", "bot_test_link",
        )}),
        ("LLM (empty: server defaults)", {"classes": ("collapse",), "fields": (
            "llm_base_url", "llm_model", "llm_temperature", "llm_max_tokens", "llm_api_key", "clear_llm_api_key",
        )}),
        ("Privacy", {"fields": ("retention_days",)}),
    )

    @method_decorator(sensitive_post_parameters("llm_api_key"))
    def changeform_view(self, *args, **kwargs):
        # An error report of this page must not quote a key just typed in.
        return super().changeform_view(*args, **kwargs)

    @admin.display(description="Twilio number")
    def twilio_number_masked(self, obj):
        return obj.twilio_number

    @admin.display(description="Engine")
    def engine(self, obj):
        from django.conf import settings

        return obj.bot_engine or f"{settings.BOT_ENGINE} (default)"


@admin.register(Contact)
class ContactAdmin(ContactErasureMixin, admin.ModelAdmin):
    list_display = ("__str__", "tenant", "phone", "name", "last_twilio_inbound_at", "created_at")
    list_filter = ("tenant",)
    search_fields = ("phone", "name", "wa_jid")
    readonly_fields = ("created_at",)
    actions = ["erase_contacts"]


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("started_at", "provider", "part", "outcome", "duration_ms", "error_code", "error", "provider_message_id")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


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


@admin.register(Message)
class MessageAdmin(RecordAdmin):
    list_display = ("id", "created_at", "tenant", "direction", "contact", "short_body", "status", "provider", "engine")
    list_filter = ("direction", "status", "provider", "tenant", "engine", "media_type")
    search_fields = ("body", "provider_message_id", "=idempotency_key", "=correlation_id", "contact__phone")
    date_hierarchy = "created_at"
    list_select_related = ("tenant", "contact")
    inlines = [AttemptInline]
    readonly_fields = (
        "idempotency_key", "correlation_id", "created_at", "updated_at", "sent_at", "delivered_at", "read_at",
        "attempt_count", "parts_sent", "lease_until", "next_attempt_at", "deadline_at", "cycle_started_at",
    )

    @admin.display(description="Body")
    def short_body(self, obj):
        return (obj.body[:60] + "…") if len(obj.body) > 60 else obj.body


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(RecordAdmin):
    list_display = ("started_at", "message", "provider", "outcome", "duration_ms", "error_code")
    list_filter = ("provider", "outcome", "message__tenant")
    search_fields = ("provider_message_id", "error", "=message__id")
    list_select_related = ("message",)


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"

    def lookups(self, request, model_admin):
        return [("1h", "Last hour"), ("1d", "Last day"), ("older", "Older than a day")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "1h":
            return queryset.filter(created_at__gte=now - timedelta(hours=1))
        if self.value() == "1d":
            return queryset.filter(created_at__gte=now - timedelta(days=1))
        if self.value() == "older":
            return queryset.filter(created_at__lt=now - timedelta(days=1))
        return queryset


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "Open"), ("no", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


class ResolveForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 80}), required=False, label="Answer text")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 80}), required=False)


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = (
        "id", "created_at", "tenant", "contact", "reason", "last_provider", "attempt_count", "short_error", "state",
    )
    list_filter = (OpenFilter, "reason", "last_provider", "message__tenant", AgeFilter)
    search_fields = ("last_error", "message__body", "message__contact__phone", "=message__id")
    list_select_related = ("message__tenant", "message__contact")
    readonly_fields = (
        "message_link", "reason", "last_error", "attempt_count", "last_provider", "created_at",
        "resolved_at", "resolved_by", "resolution", "note", "timeline",
    )
    exclude = ("message",)
    actions = ["requeue_selected", "discard_selected"]
    change_form_template = "admin/whatsapp/deadletter/change_form.html"
    change_list_template = "admin/whatsapp/deadletter/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_resolve_permission(self, request):
        return request.user.has_perm("whatsapp.resolve_deadletter")

    @admin.display(description="Tenant")
    def tenant(self, obj):
        return obj.message.tenant

    @admin.display(description="Contact")
    def contact(self, obj):
        return obj.message.contact

    @admin.display(description="Error")
    def short_error(self, obj):
        return obj.last_error[:80]

    @admin.display(description="State")
    def state(self, obj):
        return obj.resolution or "open"

    @admin.display(description="Message")
    def message_link(self, obj):
        url = reverse("admin:whatsapp_message_change", args=[obj.message_id])
        return format_html('<a href="{}">#{}</a>: {}', url, obj.message_id, obj.message.body[:200])

    @admin.display(description="Attempt timeline")
    def timeline(self, obj):
        rows = obj.message.attempts.order_by("started_at")
        return format_html(
            "<table><tr><th>Started</th><th>Provider</th><th>Part</th><th>Outcome</th><th>ms</th><th>Error</th></tr>"
            "{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
                (
                    (a.started_at.strftime("%Y-%m-%d %H:%M:%S"), a.provider, a.part, a.outcome, a.duration_ms,
                     a.error_code, a.error[:200])
                    for a in rows
                ),
            ),
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context["open_count"] = DeadLetter.objects.filter(resolved_at__isnull=True).count()
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            path("<int:pk>/resolve/", self.admin_site.admin_view(self.resolve_view), name="whatsapp_deadletter_resolve"),
            *super().get_urls(),
        ]

    def resolve_view(self, request, pk):
        """Edit and requeue, or discard with a note."""
        dl = get_object_or_404(DeadLetter.objects.select_related("message"), pk=pk)
        if not self.has_resolve_permission(request):
            messages.error(request, "You do not have permission to resolve dead letters.")
            return redirect("admin:whatsapp_deadletter_change", pk)
        form = ResolveForm(request.POST or None, initial={"body": dl.message.body})
        if request.method == "POST" and form.is_valid():
            if "discard" in request.POST:
                done = delivery.discard(dl, request.user, form.cleaned_data["note"])
                messages.info(request, "Discarded." if done else "Already resolved; nothing done.")
            else:
                done = delivery.requeue(dl, request.user, form.cleaned_data["body"])
                messages.info(request, "Requeued for delivery." if done else "Already resolved; nothing done.")
            return redirect("admin:whatsapp_deadletter_changelist")
        context = {**self.admin_site.each_context(request), "dl": dl, "form": form, "opts": self.model._meta,
                   "title": f"Resolve dead letter #{dl.pk}"}
        return render(request, "admin/whatsapp/deadletter/resolve.html", context)

    @admin.action(description="Requeue selected dead letters", permissions=["resolve"])
    def requeue_selected(self, request, queryset):
        done = sum(delivery.requeue(dl, request.user) for dl in queryset)
        self.message_user(request, f"Requeued {done}; {queryset.count() - done} were already resolved.")

    @admin.action(description="Discard selected dead letters", permissions=["resolve"])
    def discard_selected(self, request, queryset):
        done = sum(delivery.discard(dl, request.user, "discarded in bulk") for dl in queryset)
        self.message_user(request, f"Discarded {done}; {queryset.count() - done} were already resolved.")


# SessionStateAdmin (the Sessions page with the QR code and lifecycle buttons).
from whatsapp import admin_sessions  # noqa: E402, F401

