"""The inbox's periodic task: hand conversations back to the bot after the tenant's idle
time without a staff reply (InboxSettings.resume_after_minutes; 0 never)."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from whatsapp.inbox import state
from whatsapp.inbox.models import Conversation, InboxSettings

log = logging.getLogger("whatsapp.inbox")


def idle_conversations(now=None) -> list[Conversation]:
    now = now or timezone.now()
    settings_of: dict[int, InboxSettings] = {}
    due = []
    for conversation in Conversation.objects.filter(bot_paused=True).select_related("contact__tenant"):
        tenant = conversation.contact.tenant
        rules = settings_of.setdefault(tenant.pk, InboxSettings.of(tenant))
        idle_since = conversation.idle_since
        if rules.resume_after_minutes and idle_since and now - idle_since >= timedelta(
                minutes=rules.resume_after_minutes):
            due.append(conversation)
    return due


@shared_task(name="whatsapp.inbox.resume_idle", acks_late=True)
def resume_idle() -> int:
    """Idempotent: resuming a resumed conversation does nothing."""
    resumed = 0
    for conversation in idle_conversations():
        minutes = InboxSettings.of(conversation.contact.tenant).resume_after_minutes
        if state.resume(conversation.contact, note=f"no staff reply for {minutes} min"):
            resumed += 1
    if resumed:
        log.info("bot resumed in %d idle conversation(s)", resumed)
    return resumed
