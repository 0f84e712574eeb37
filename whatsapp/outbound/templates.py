"""Which approved Twilio template a message goes out as when the 24-hour window is closed:
the one staff chose for it (whatsapp.inbox.replies stores its ContentSid on the message),
else the tenant's default; and that template's variables."""

from __future__ import annotations

from whatsapp.inbox.models import ReplyTemplate
from whatsapp.models import Message


def template_sid_for(message: Message) -> str:
    """The ContentSid to send instead of the text, or "" when there is none."""
    return message.template_sid or message.tenant.twilio_template_sid


def template_variables_for(message: Message, template_sid: str) -> dict:
    if not template_sid:
        return {}
    chosen = ReplyTemplate.objects.filter(tenant_id=message.tenant_id, content_sid=template_sid).first()
    return chosen.variables if chosen is not None else message.tenant.twilio_template_variables
