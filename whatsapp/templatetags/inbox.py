from __future__ import annotations

from django import template

from whatsapp.inbox.metrics import needs_human_count

register = template.Library()


@register.simple_tag
def conversations_needing_human() -> int:
    return needs_human_count()
