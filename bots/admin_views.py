"""Admin page "test the bot": staff send a test question to a tenant's bot (its own
engine, or another one before switching) and see the answer, the engine that gave it and
how long it took. Nothing is stored and nothing is sent to any customer."""

from __future__ import annotations

from functools import partial

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.html import format_html

from bots.tasks import build_reply
from whatsapp.models import Direction, Message, Status, Tenant

ENGINE_CHOICES = [("", "The tenant's engine"), ("rules", "Rules"), ("llm", "LLM")]


class BotTestForm(forms.Form):
    question = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=2000)
    engine = forms.ChoiceField(choices=ENGINE_CHOICES, required=False)


class BotTestAdminMixin:
    """For TenantAdmin: a "Send a test question" link and the page behind it."""

    def get_urls(self):
        view = self.admin_site.admin_view(partial(bot_test_view, self))
        return [path("<int:pk>/bot-test/", view, name="whatsapp_tenant_bot_test"), *super().get_urls()]

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "bot_test_link")

    @admin.display(description="Test the bot")
    def bot_test_link(self, obj):
        if not obj or not obj.pk:
            return "Save the tenant first."
        url = reverse("admin:whatsapp_tenant_bot_test", args=[obj.pk])
        return format_html('<a class="button" href="{}">Send a test question</a>', url)


def bot_test_view(model_admin, request, pk: int):
    tenant = get_object_or_404(Tenant, pk=pk)
    if not model_admin.has_change_permission(request, tenant):
        raise PermissionDenied
    form = BotTestForm(request.POST or None)
    result = None
    if request.method == "POST" and form.is_valid():
        result = ask(tenant, form.cleaned_data["question"], form.cleaned_data["engine"] or None)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Tenant._meta,
        "original": tenant,
        "tenant": tenant,
        "form": form,
        "result": result,
        "engine": tenant.bot_engine or f"{settings.BOT_ENGINE} (server default)",
        "title": f"Test the bot of {tenant}",
    }
    return render(request, "admin/bots/bot_test.html", context)


def ask(tenant: Tenant, question: str, engine_name: str | None = None) -> dict:
    """The answer the bot would give to `question` as a first message. The message is
    built in memory only: no row is saved, no delivery is enqueued."""
    from bots.tasks import answer_with_fallback

    message = Message(tenant=tenant, direction=Direction.INBOUND, body=question, media_type="text",
                      status=Status.RECEIVED)
    name = engine_name or tenant.bot_engine or settings.BOT_ENGINE
    errors: list[str] = []

    def engine_call(engine, tenant_, batch, history):
        reply, error = answer_with_fallback(engine, tenant_, batch, history)
        if error:
            errors.append(error)
        return reply

    reply, latency_ms = build_reply(tenant, [message], history=[], engine_name=name, answer=engine_call)
    return {"text": reply.text, "engine": reply.engine, "latency_ms": latency_ms, "error": errors[0] if errors else ""}
