"""Admin page "test the bot": staff send a test question to a tenant's bot (its own
engine, or another one before switching) and see the answer, the engine that gave it and
how long it took. Nothing is stored and nothing is sent to any customer.

The question is answered by an `ai` worker (bots.trial); the page only enqueues it and
then polls a small JSON endpoint, so no web worker waits for a model."""

from __future__ import annotations

import logging
from functools import partial

import redis
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from bots import trial
from whatsapp.models import Tenant

log = logging.getLogger("bots.admin")

ENGINE_CHOICES = [("", "The tenant's engine"), ("rules", "Rules"), ("llm", "LLM")]
RESULT_FIELDS = ("status", "text", "engine", "latency_ms", "error")


class BotTestForm(forms.Form):
    question = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=2000)
    engine = forms.ChoiceField(choices=ENGINE_CHOICES, required=False)


class BotTestAdminMixin:
    """For TenantAdmin: a "Send a test question" link and the pages behind it."""

    def get_urls(self):
        def view(func):
            return self.admin_site.admin_view(partial(func, self))

        return [
            path("<int:pk>/bot-test/", view(bot_test_view), name="whatsapp_tenant_bot_test"),
            path("<int:pk>/bot-test/<str:token>/", view(bot_test_view), name="whatsapp_tenant_bot_test_run"),
            path("<int:pk>/bot-test/<str:token>/result.json", view(bot_test_result),
                 name="whatsapp_tenant_bot_test_result"),
            *super().get_urls(),
        ]

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "bot_test_link")

    @admin.display(description="Test the bot")
    def bot_test_link(self, obj):
        if not obj or not obj.pk:
            return "Save the tenant first."
        url = reverse("admin:whatsapp_tenant_bot_test", args=[obj.pk])
        return format_html('<a class="button" href="{}">Send a test question</a>', url)


def _tenant_for(model_admin, request, pk: int) -> Tenant:
    tenant = get_object_or_404(Tenant, pk=pk)
    if not model_admin.has_change_permission(request, tenant):
        raise PermissionDenied
    return tenant


def _trial(tenant: Tenant, token: str) -> dict:
    try:
        state = trial.load(token, tenant)
    except redis.RedisError:
        return {"status": trial.UNREACHABLE, "question": ""}
    if state is None:
        raise Http404("No such test question (they are kept for 10 minutes).")
    return state


def bot_test_view(model_admin, request, pk: int, token: str | None = None):
    tenant = _tenant_for(model_admin, request, pk)
    result = _trial(tenant, token) if token else None
    initial = {"question": result["question"], "engine": result.get("engine_choice", "")} if result else None
    form = BotTestForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            token = trial.start(tenant, form.cleaned_data["question"], form.cleaned_data["engine"] or None)
        except Exception:  # noqa: BLE001 - Redis or the broker is down: say so, do not 500
            log.exception("could not enqueue a bot test question")
            messages.error(request, "The question could not be queued: the task queue (Redis) is unreachable.")
        else:
            return redirect("admin:whatsapp_tenant_bot_test_run", pk=tenant.pk, token=token)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Tenant._meta,
        "original": tenant,
        "tenant": tenant,
        "form": form,
        "result": result,
        "result_url": reverse("admin:whatsapp_tenant_bot_test_result", args=[tenant.pk, token]) if token else "",
        "engine": tenant.bot_engine or f"{settings.BOT_ENGINE} (server default)",
        "deadline": settings.LLM_DEADLINE,
        "title": f"Test the bot of {tenant}",
    }
    return render(request, "admin/bots/bot_test.html", context)


def bot_test_result(model_admin, request, pk: int, token: str):
    """What the page polls: the trial's state, without the question."""
    state = _trial(_tenant_for(model_admin, request, pk), token)
    return JsonResponse({key: state.get(key) for key in RESULT_FIELDS})
