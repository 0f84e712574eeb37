"""Admin for staff: tenants, conversations, delivery timelines and the dead-letter list."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.debug import sensitive_post_parameters

from bots.admin_views import BotTestAdminMixin
from bots.llm_url import BlockedURL, validate_tenant_llm_url
from project.encryption import secret_is_set
from whatsapp.admin_privacy import ContactErasureMixin
from whatsapp.admin_records import RecordAdmin
from whatsapp.admin_tenant import TenantConnectAdminMixin
from whatsapp.inbound.dead_letters import answer_now, store_and_answer
from whatsapp.media.preview import MediaInline
from whatsapp.models import Contact, DeadLetter, DeliveryAttempt, Message, Tenant
from whatsapp.outbound import delivery
from whatsapp.outbound.answer_parts import sent_and_unsent
from whatsapp.outbound.dead_letter_reasons import PROVIDER_CODES, explain


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
            "twilio_template_variables", "baileys_sends_per_minute", "shard",
        )}),
        ("Bot", {"fields": (
            "bot_engine", "greeting", "fallback_reply", "non_text_reply", "system_prompt", "business_facts",
            "debounce_seconds", "bot_test_link",
        )}),
        ("Media", {"fields": ("transcribe_voice_notes", "llm_accepts_images", "session_presence")}),
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


@admin.register(Message)
class MessageAdmin(RecordAdmin):
    list_display = ("id", "created_at", "tenant", "direction", "contact", "short_body", "status", "provider", "engine")
    list_filter = ("direction", "status", "provider", "tenant", "engine", "media_type")
    search_fields = ("body", "provider_message_id", "=idempotency_key", "=correlation_id", "contact__phone")
    date_hierarchy = "created_at"
    list_select_related = ("tenant", "contact")
    inlines = [MediaInline, AttemptInline]
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
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}), required=False, label="Answer text still to send",
        help_text="Parts the customer already has are not sent again; this replaces only the rest.",
    )
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 80}), required=False)
    confirm_discard = forms.BooleanField(required=False, label="Yes, discard: the customer gets no answer")


def _last_error_code():
    return Subquery(
        DeliveryAttempt.objects.filter(message=OuterRef("message"), error_code__in=PROVIDER_CODES)
        .order_by("-started_at").values("error_code")[:1]
    )


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """Records with actions, not forms: no Add, no Save, no Delete. Staff act through
    requeue / answer now / store and answer, and discard (which asks first)."""

    list_display = ("id", "created", "tenant_name", "question", "problem", "state")
    list_display_links = ("id", "created")
    list_filter = (OpenFilter, "kind", "reason", "last_provider", "message__tenant", AgeFilter)
    search_fields = ("last_error", "message__body", "message__in_reply_to__body", "message__contact__phone",
                     "=message__id", "tenant_slug")
    list_select_related = ("message__tenant", "message__contact", "message__in_reply_to", "requeued_from")
    list_per_page = 50
    readonly_fields = (
        "kind", "customer_question", "message_link", "reason_in_words", "last_error", "attempt_count",
        "last_provider", "created_at", "resolved_at", "resolved_by", "resolution", "note", "chain",
        "original_body", "edited_body", "tenant_slug", "timeline",
    )
    exclude = ("message", "payload", "source_id", "requeued_from", "reason")
    actions = ["requeue_selected", "answer_selected", "discard_selected"]
    change_form_template = "admin/whatsapp/deadletter/change_form.html"
    change_list_template = "admin/whatsapp/deadletter/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(error_code=_last_error_code()).prefetch_related("requeued_as")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # every field is a record; the actions change what may change

    def has_delete_permission(self, request, obj=None):
        return False  # discard keeps the record; a delete would lose the audit trail

    def has_resolve_permission(self, request):
        return request.user.has_perm("whatsapp.resolve_deadletter")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="When", ordering="created_at")
    def created(self, obj):
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Tenant")
    def tenant_name(self, obj):
        if obj.message_id:
            return obj.message.tenant.slug
        return format_html("{} <small>(no such tenant now)</small>", obj.tenant_slug) if not Tenant.objects.filter(
            slug=obj.tenant_slug).exists() else obj.tenant_slug

    @admin.display(description="Customer wrote")
    def question(self, obj):
        text = question_text(obj)
        short = (text[:90] + "…") if len(text) > 90 else text
        return format_html('<span class="dl-question" title="{}">{}</span><br><small>{}</small>',
                           text[:500], short or "—", obj.get_kind_display())

    @admin.display(description="Problem and what to do")
    def problem(self, obj):
        words, fix = explain(obj.reason, getattr(obj, "error_code", "") or "")
        return format_html('<span class="dl-reason">{}</span><br><small class="dl-fix">{}</small>', words, fix)

    @admin.display(description="State")
    def state(self, obj):
        state = obj.get_resolution_display() if obj.resolution else "open"
        links = self.chain(obj)
        return state if links == "—" else format_html("{}<br><small>{}</small>", state, links)

    @admin.display(description="Customer wrote")
    def customer_question(self, obj):
        return question_text(obj)

    @admin.display(description="Reason")
    def reason_in_words(self, obj):
        words, fix = explain(obj.reason, error_code_of(obj))
        return format_html("{}<br><strong>What to do:</strong> {}", words, fix)

    @admin.display(description="Message")
    def message_link(self, obj):
        if not obj.message_id:
            return "— (not stored: the webhook refused it)"
        url = reverse("admin:whatsapp_message_change", args=[obj.message_id])
        return format_html('<a href="{}">#{}</a>: {}', url, obj.message_id, obj.message.body[:200])

    @admin.display(description="Requeue chain")
    def chain(self, obj):
        links = []
        if obj.requeued_from_id:
            links.append(format_html('from <a href="{}">#{}</a>', _change_url(obj.requeued_from_id),
                                     obj.requeued_from_id))
        for later in obj.requeued_as.all():
            links.append(format_html('requeued as <a href="{}">#{}</a>', _change_url(later.pk), later.pk))
        return format_html_join("; ", "{}", ((x,) for x in links)) if links else "—"

    @admin.display(description="Attempt timeline")
    def timeline(self, obj):
        if not obj.message_id:
            return "—"
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
        """Outbound: edit and requeue, or discard. Inbound: answer now / store and answer,
        or discard. Discard needs its confirmation box ticked."""
        dl = get_object_or_404(DeadLetter.objects.select_related("message__tenant"), pk=pk)
        if not self.has_resolve_permission(request):
            messages.error(request, "You do not have permission to resolve dead letters.")
            return redirect("admin:whatsapp_deadletter_change", pk)
        sent, unsent = ("", "")
        if dl.kind == DeadLetter.Kind.OUTBOUND:
            sent, unsent = sent_and_unsent(dl.message, delivery.part_limit(dl.message.tenant))
        form = ResolveForm(request.POST or None, initial={"body": unsent})
        if request.method == "POST" and form.is_valid():
            note = form.cleaned_data["note"]
            if "discard" in request.POST:
                if not form.cleaned_data["confirm_discard"]:
                    messages.error(request, "Tick the box to confirm the discard: the customer gets no answer.")
                    return redirect("admin:whatsapp_deadletter_resolve", pk)
                done = delivery.discard(dl, request.user, note)
                messages.info(request, "Discarded." if done else "Already resolved; nothing done.")
            elif dl.kind == DeadLetter.Kind.UNANSWERED:
                done = answer_now(dl, request.user, note)
                messages.info(request, "The bot answers it now." if done else "Already resolved; nothing done.")
            elif dl.kind == DeadLetter.Kind.REFUSED:
                done, text = store_and_answer(dl, request.user, note)
                (messages.info if done else messages.error)(request, text)
                if not done:
                    return redirect("admin:whatsapp_deadletter_resolve", pk)
            else:
                done = delivery.requeue(dl, request.user, form.cleaned_data["body"], note)
                messages.info(request, "Requeued for delivery." if done else "Already resolved; nothing done.")
            return redirect("admin:whatsapp_deadletter_changelist")
        words, fix = explain(dl.reason, error_code_of(dl))
        context = {**self.admin_site.each_context(request), "dl": dl, "form": form, "opts": self.model._meta,
                   "title": f"Resolve dead letter #{dl.pk}: {dl.get_kind_display().lower()}", "question": question_text(dl), "sent": sent,
                   "words": words, "fix": fix}
        return render(request, "admin/whatsapp/deadletter/resolve.html", context)

    @admin.action(description="Requeue selected dead letters", permissions=["resolve"])
    def requeue_selected(self, request, queryset):
        done = sum(delivery.requeue(dl, request.user) for dl in queryset)
        self.message_user(request, f"Requeued {done}; {queryset.count() - done} were already resolved or not replies.")

    @admin.action(description="Answer selected messages now", permissions=["resolve"])
    def answer_selected(self, request, queryset):
        """After an outage of the bot: run it again for every selected unanswered message."""
        done = sum(answer_now(dl, request.user) for dl in queryset)
        self.message_user(request, f"The bot answers {done} now; {queryset.count() - done} were already resolved "
                                   "or are not unanswered messages.")

    @admin.action(description="Discard selected dead letters…", permissions=["resolve"])
    def discard_selected(self, request, queryset):
        """Asks first (like Django's delete confirmation): a discard cannot be undone."""
        if request.POST.get("confirm_discard") != "yes":
            context = {**self.admin_site.each_context(request), "queryset": queryset, "opts": self.model._meta,
                       "title": "Discard dead letters?", "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME}
            return render(request, "admin/whatsapp/deadletter/discard_confirm.html", context)
        done = sum(delivery.discard(dl, request.user, "discarded in bulk") for dl in queryset)
        self.message_user(request, f"Discarded {done}; {queryset.count() - done} were already resolved.")


def _change_url(pk: int) -> str:
    return reverse("admin:whatsapp_deadletter_change", args=[pk])


def error_code_of(dl: DeadLetter) -> str:
    """The last provider code of the reply's attempts that has words of its own (the
    list annotates it; see _last_error_code)."""
    if hasattr(dl, "error_code"):
        return dl.error_code or ""
    if not dl.message_id:
        return ""
    attempts = dl.message.attempts.filter(error_code__in=PROVIDER_CODES).order_by("-started_at")
    return attempts.values_list("error_code", flat=True).first() or ""


def question_text(dl: DeadLetter) -> str:
    """What the customer wrote: the message the reply answers, the unanswered message, or
    the text in the refused webhook."""
    if dl.kind == DeadLetter.Kind.REFUSED:
        return str(dl.payload.get("text") or dl.payload.get("type") or "")
    if dl.message_id is None:
        return ""
    if dl.kind == DeadLetter.Kind.UNANSWERED:
        return dl.message.body
    return dl.message.in_reply_to.body if dl.message.in_reply_to_id else ""


# The rooms' admins register themselves when imported: the Sessions page with its QR code
# and lifecycle buttons, the inbox's per-tenant settings, the media list and its
# staff-only file view.
from whatsapp.inbox import admin as inbox_admin  # noqa: E402, F401
from whatsapp.media import admin as media_admin  # noqa: E402, F401
from whatsapp.sessions import admin as admin_sessions  # noqa: E402, F401
