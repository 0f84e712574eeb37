"""The Chat Completions `messages` for one answer: the tenant's system prompt and
business facts, the conversation so far, then the customer's new message(s)."""

from __future__ import annotations

from bots.media_content import image_parts
from bots.memory import message_text
from whatsapp.models import Direction, Message, Tenant

DEFAULT_SYSTEM_PROMPT = (
    "You are the WhatsApp assistant of {name}. Answer the customer briefly and politely, in the "
    "customer's language. Use only the business facts you are given; if you do not know "
    "something, say that a member of the team will get back to them."
)


def system_message(tenant: Tenant) -> str:
    text = (tenant.system_prompt or DEFAULT_SYSTEM_PROMPT).replace("{name}", tenant.name or tenant.slug)
    if tenant.business_facts.strip():
        text += "\n\nBusiness facts:\n" + tenant.business_facts.strip()
    return text


def build_messages(tenant: Tenant, batch: list[Message], history: list[Message]) -> list[dict]:
    messages = [{"role": "system", "content": system_message(tenant)}]
    for message in history:
        role = "assistant" if message.direction == Direction.OUTBOUND else "user"
        messages.append({"role": role, "content": message_text(message)})
    # Several short messages in a row are one turn of the customer's.
    new = "\n".join(text for text in (message_text(m) for m in batch) if text)
    images = image_parts(batch) if tenant.llm_accepts_images else []
    # With photos the turn is a list of parts: the text (captions included), then the images.
    messages.append({"role": "user", "content": [{"type": "text", "text": new}, *images] if images else new})
    return messages
