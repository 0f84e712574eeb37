"""When to answer: the webhook calls schedule_reply after commit."""

from __future__ import annotations


def schedule_reply(message) -> None:
    from bots.tasks import generate_reply

    generate_reply.delay(message.pk)
