"""The dead letters' actions from the conversation page, by the same code paths as the
dead-letter admin (whatsapp.admin DeadLetterAdmin): an undeliverable reply is requeued or
discarded, an unanswered customer message is answered now by the bot or discarded. Who may
act: the admin's permission to resolve dead letters (whatsapp.resolve_deadletter)."""

from __future__ import annotations

from whatsapp.inbound.dead_letters import answer_now
from whatsapp.models import DeadLetter
from whatsapp.outbound import delivery

PERMISSION = "whatsapp.resolve_deadletter"
LABELS = {"requeue": "Requeue", "answer": "Answer now", "discard": "Discard"}
NOTE = "from the inbox"


def actions_for(letter: DeadLetter) -> list[str]:
    """What can be done with an open dead letter shown in a thread."""
    if letter.resolved_at is not None:
        return []
    if letter.kind == DeadLetter.Kind.OUTBOUND:
        return ["requeue", "discard"]
    if letter.kind == DeadLetter.Kind.UNANSWERED:
        return ["answer", "discard"]
    return ["discard"]


def act(letter: DeadLetter, action: str, user) -> bool:
    """False when the action does not apply (or someone resolved it first)."""
    if action not in actions_for(letter):
        return False
    if action == "requeue":
        return delivery.requeue(letter, user, note=NOTE)
    if action == "answer":
        return answer_now(letter, user, NOTE)
    return delivery.discard(letter, user, NOTE)
