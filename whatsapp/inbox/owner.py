"""The business owner answered a customer from the phone itself (WhatsApp Web's own
device, not this system): the sidecar forwards such a message (fromMe, not one of ours)
and the bot pauses for that contact, so it does not talk over the owner. The message is
kept in the thread as the owner's."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from whatsapp.inbound.store import Inbound
from whatsapp.inbound.store import _contact as contact_of  # the webhook's own lookup: phone, then LID
from whatsapp.inbox import state
from whatsapp.inbox.models import Conversation, ConversationEvent, PauseReason
from whatsapp.models import DeliveryAttempt, Direction, Message, Provider, Status

log = logging.getLogger("whatsapp.inbox")


def ours(provider_message_id: str) -> bool:
    """A message this system sent (any part of a split answer), or one already recorded."""
    return (
        Message.objects.filter(provider=Provider.BAILEYS, provider_message_id=provider_message_id).exists()
        or DeliveryAttempt.objects.filter(provider=Provider.BAILEYS, provider_message_id=provider_message_id).exists()
    )


def owner_wrote(inbound: Inbound) -> bool:
    """Record the owner's message and pause the bot. False when it was ours or known."""
    if ours(inbound.provider_message_id):
        return False
    try:
        with transaction.atomic():
            contact = contact_of(inbound)
            now = timezone.now()
            Message.objects.create(
                tenant=inbound.tenant, contact=contact, direction=Direction.OUTBOUND, status=Status.SENT,
                provider=Provider.BAILEYS, provider_message_id=inbound.provider_message_id, body=inbound.body,
                media_type=inbound.media_type, engine="phone", sent_at=now,
            )
            # The owner answered what was pending: the bot must not answer it as well.
            Message.objects.filter(
                contact=contact, direction=Direction.INBOUND, status__in=[Status.RECEIVED, Status.WAITING]
            ).update(status=Status.ANSWERED, updated_at=now)
            state.pause(contact, PauseReason.OWNER_PHONE)
            state.record_event(contact, ConversationEvent.Kind.OWNER_REPLIED)
            Conversation.objects.filter(contact=contact).update(last_staff_reply_at=now)
    except IntegrityError:
        return False  # the same message forwarded twice at once
    log.info("the owner answered from the phone: bot paused", extra={"contact_id": contact.pk})
    return True
