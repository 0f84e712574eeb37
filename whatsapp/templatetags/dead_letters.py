"""The open dead-letter count, for the admin index: staff see at a glance whether any
customer is waiting for a person."""

from __future__ import annotations

from django import template

from whatsapp.models import DeadLetter

register = template.Library()


@register.simple_tag
def open_dead_letter_count() -> int:
    return DeadLetter.objects.filter(resolved_at__isnull=True).count()
