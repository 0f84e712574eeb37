"""How an answer is cut into the parts that are sent, and each part's idempotency key.

Edited text after a partial send (edit-and-requeue): the parts the customer already has
stay sent; the new text replaces only what was not sent. The message's body stays the
whole answer as the customer reads it (the sent parts, then the new text), so the
conversation memory and the admin show what was said; `sent_before_edit` is the prefix of
the body that was already delivered and `parts_before_edit` how many parts it was. Only
the rest of the body is split and sent, numbered from there.
"""

from __future__ import annotations

from whatsapp.models import Message
from whatsapp.text import split_text

SEPARATOR = "\n"


def answer_parts(message: Message, limit: int) -> list[str]:
    """The parts of the answer, in order. Parts delivered before an edit are kept as
    placeholders (their text is in sent_before_edit): they are never sent again."""
    if not message.sent_before_edit:
        return split_text(message.body, limit)
    rest = message.body[len(message.sent_before_edit):].strip()
    return [""] * message.parts_before_edit + (split_text(rest, limit) if rest else [])


def part_key(message: Message, index: int, generation: int | None = None) -> str:
    """The idempotency key of part `index`. Generation 0 keeps the original form
    `<key>:<index>`; a requeue starts generation n with `<key>:<n>:<index>`. Receipts find
    the message by the text before the first colon (whatsapp.inbound.receipts.find_outbound)."""
    generation = message.key_generation if generation is None else generation
    if generation == 0:
        return f"{message.idempotency_key}:{index}"
    return f"{message.idempotency_key}:{generation}:{index}"


def parse_part_key(key: str) -> tuple[int, int] | None:
    """(generation, index) of a key made by part_key; None if it is not one."""
    numbers = (key or "").split(":")[1:]
    if not 1 <= len(numbers) <= 2 or not all(n.isdecimal() and len(n) < 6 for n in numbers):
        return None
    return (int(numbers[0]), int(numbers[1])) if len(numbers) == 2 else (0, int(numbers[0]))


def sent_and_unsent(message: Message, limit: int) -> tuple[str, str]:
    """The text the customer already has and the text still to send (what staff edit)."""
    parts = answer_parts(message, limit)
    sent = parts[:message.parts_sent]
    if message.sent_before_edit:
        sent = [message.sent_before_edit, *sent[message.parts_before_edit:]]
    return SEPARATOR.join(p for p in sent if p), SEPARATOR.join(parts[message.parts_sent:])


def edited_fields(message: Message, new_text: str, limit: int) -> dict:
    """The Message fields after staff replaced the unsent rest of the answer with
    `new_text`; the sent parts stay and are not sent again."""
    sent, _unsent = sent_and_unsent(message, limit)
    new_text = new_text.strip()
    if not sent:
        return {"body": new_text, "parts_sent": 0, "sent_before_edit": "", "parts_before_edit": 0}
    return {
        "body": f"{sent}{SEPARATOR}{new_text}" if new_text else sent,
        "sent_before_edit": sent,
        "parts_before_edit": message.parts_sent,
        "parts_sent": message.parts_sent,
    }
