"""The zero-setup engine: the tenant's keyword/regex rules, a greeting for a first
message, and the fallback answer otherwise. It never fails.

A burst ("Hi" / "what are your hours?" / "do you deliver?") is one batch: each message is
matched on its own, so every question a rule recognises gets its answer, in the order
asked (one answer per rule, even if asked twice)."""

from __future__ import annotations

import re

from bots.engines.base import Reply
from bots.models import Rule
from project.compiled_query import CompiledRead

GREETINGS = ("good morning", "good afternoon", "good evening", "hi", "hello", "hey", "hiya", "hola", "shalom",
             "start")
# "hello there", "hi all", "hey, how are you": a greeting plus a few words is still a
# greeting. A burst gets the greeting only if all of it is greetings: "hi" + a question no
# rule knows is a question, and gets the fallback answer.
GREETING_TAIL_WORDS = 3
_GREETING = re.compile(rf"^(?:{'|'.join(re.escape(g) for g in GREETINGS)})\b")


# Compiled once per process (project.compiled_query): read for every answer.
_ENABLED_RULES = CompiledRead(lambda tenant_id: Rule.objects.filter(tenant_id=tenant_id, enabled=True))


class RulesEngine:
    name = "rules"
    reads_history = False

    def reply(self, tenant, inbound, history) -> Reply:
        texts = [m.body.strip() for m in inbound if m.body and m.body.strip()]
        rules = _ENABLED_RULES.all(tenant.pk)
        answers: list[str] = []
        for text in texts:
            rule = next((r for r in rules if r.matches(text)), None)
            if rule is not None and rule.answer not in answers:
                answers.append(rule.answer)
        if answers:
            return Reply("\n\n".join(answers), self.name)
        if tenant.greeting and texts and all(is_greeting(t) for t in texts):
            return Reply(tenant.greeting, self.name)
        return Reply(fallback_text(tenant), self.name)


def is_greeting(text: str) -> bool:
    words = " ".join(re.findall(r"[\w']+", text.lower()))
    match = _GREETING.match(words)
    return match is not None and len(words[match.end():].split()) <= GREETING_TAIL_WORDS


def fallback_text(tenant) -> str:
    return tenant.fallback_reply or "Thanks for your message! We will get back to you soon."
