"""The send task (queue `send`). It takes only the outbound message's id: the database
holds the state, so a redelivered or duplicated task is harmless."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from whatsapp.outbound import delivery


# The name is frozen (see celeryconfig.py): queued tasks carry it.
@shared_task(name="whatsapp.tasks.send_message", bind=True, max_retries=None, acks_late=True)
def send_message(self, message_id: int) -> None:
    decision = delivery.deliver(message_id)
    if decision.retry_in is not None:
        # Celery's own retry; the policy counts attempts in the database. A countdown
        # longer than the broker's visibility timeout would be delivered twice, so a long
        # wait (a far pacing slot, a Retry-After) is left to the database: the message
        # keeps its next_attempt_at and the reconciler re-drives it when it is due.
        if decision.retry_in <= settings.CELERY_VISIBILITY_TIMEOUT / 4:
            raise self.retry(countdown=decision.retry_in)
