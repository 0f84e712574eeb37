"""The zero-setup engine: the tenant's keyword/regex rules, a greeting for a first
message, and the fallback answer otherwise. It never fails."""

from __future__ import annotations

from bots.engines.base import Reply
from bots.models import Rule

GREETINGS = {"hi", "hello", "hey", "hola", "shalom", "good morning", "good evening", "start"}


class RulesEngine:
    name = "rules"

    def reply(self, tenant, inbound, history) -> Reply:
        text = "\n".join(m.body for m in inbound if m.body).strip()
        for rule in Rule.objects.filter(tenant=tenant, enabled=True):
            if text and rule.matches(text):
                return Reply(rule.answer, self.name)
        if text.lower().strip(" !.?") in GREETINGS and tenant.greeting:
            return Reply(tenant.greeting, self.name)
        return Reply(fallback_text(tenant), self.name)


def fallback_text(tenant) -> str:
    return tenant.fallback_reply or "Thanks for your message! We will get back to you soon."
