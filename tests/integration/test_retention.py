"""Retention: old conversations are deleted, in batches, and nothing that still matters
(an unanswered message, a reply being delivered, an open dead letter) ever is."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import pytest
from django.utils import timezone

from tests.support.waiting import wait_for
from whatsapp.models import Contact, DeadLetter, DeliveryAttempt, Direction, Message, Status, Tenant
from whatsapp.retention import purge

pytestmark = pytest.mark.django_db

_ids = count(1)


def backdate(days: float, *rows) -> None:
    """Make rows look `days` old: created and last changed then."""
    when = timezone.now() - timedelta(days=days)
    for row in rows:
        type(row).objects.filter(pk=row.pk).update(created_at=when, updated_at=when)


def conversation(tenant, days: float, inbound_status=Status.ANSWERED, reply_status=Status.DELIVERED,
                 phone: str | None = None):
    """An inbound message and its reply (with one attempt), `days` old."""
    contact, _ = Contact.objects.get_or_create(tenant=tenant, phone=phone or f"+1555{next(_ids):07d}")
    inbound = Message.objects.create(
        tenant=tenant, contact=contact, direction=Direction.INBOUND, status=inbound_status, body="hi",
    )
    reply = None
    if reply_status:
        reply = Message.objects.create(
            tenant=tenant, contact=contact, direction=Direction.OUTBOUND, status=reply_status, body="hello",
            in_reply_to=inbound,
        )
        DeliveryAttempt.objects.create(message=reply, provider="twilio", outcome="accepted")
    backdate(days, *(m for m in (inbound, reply) if m))
    Contact.objects.filter(pk=contact.pk).update(created_at=timezone.now() - timedelta(days=days))
    return inbound, reply


def test_messages_older_than_the_tenant_window_are_deleted_with_their_attempts(tenant, settings):
    settings.RETENTION_DAYS = 30
    old_in, old_reply = conversation(tenant, days=31)
    new_in, new_reply = conversation(tenant, days=29)

    result = purge()

    assert not Message.objects.filter(pk__in=[old_in.pk, old_reply.pk]).exists()
    assert not DeliveryAttempt.objects.filter(message_id=old_reply.pk).exists()
    assert set(Message.objects.values_list("pk", flat=True)) == {new_in.pk, new_reply.pk}
    assert result == {"messages": 2, "attempts": 1, "dead_letters": 0, "contacts": 1, "complete": True}


def test_a_tenant_keeps_messages_for_its_own_number_of_days(tenant, settings):
    settings.RETENTION_DAYS = 90
    short = Tenant.objects.create(slug="brief", name="Brief", retention_days=7)
    kept = conversation(tenant, days=10)
    gone = conversation(short, days=10)

    purge()

    assert Message.objects.filter(pk__in=[m.pk for m in kept]).count() == 2
    assert not Message.objects.filter(pk__in=[m.pk for m in gone]).exists()


def test_nothing_still_in_progress_is_deleted_however_old(tenant, settings):
    settings.RETENTION_DAYS = 30
    unanswered, _ = conversation(tenant, days=60, inbound_status=Status.RECEIVED, reply_status=None)
    waiting_in, queued = conversation(tenant, days=60, reply_status=Status.QUEUED)
    sending_in, sending = conversation(tenant, days=60, reply_status=Status.SENDING)
    dead_in, dead = conversation(tenant, days=60, reply_status=Status.DEAD)
    DeadLetter.objects.create(message=dead, reason=DeadLetter.Reason.EXHAUSTED)
    # A receipt arrived yesterday: the message changed within the window.
    _, late_receipt = conversation(tenant, days=60, reply_status=Status.READ)
    Message.objects.filter(pk=late_receipt.pk).update(updated_at=timezone.now() - timedelta(days=1))

    purge()

    for message in (unanswered, waiting_in, queued, sending_in, sending, dead_in, dead, late_receipt):
        assert Message.objects.filter(pk=message.pk).exists(), message
    assert DeadLetter.objects.filter(message=dead, resolved_at__isnull=True).exists()


def test_resolved_dead_letters_go_after_the_window_and_recently_resolved_ones_stay(tenant, settings):
    settings.RETENTION_DAYS = 30
    now = timezone.now()
    _, requeued_long_ago = conversation(tenant, days=60, reply_status=Status.SENT)
    old = DeadLetter.objects.create(message=requeued_long_ago, reason="exhausted", resolved_at=now - timedelta(days=40),
                                    resolution="requeued")
    _, requeued_lately = conversation(tenant, days=60, reply_status=Status.SENT)
    recent = DeadLetter.objects.create(message=requeued_lately, reason="exhausted", resolved_at=now - timedelta(days=2),
                                       resolution="requeued")
    # Died again after an old requeue: the message stays (open letter), the old letter goes.
    _, died_again = conversation(tenant, days=60, reply_status=Status.DEAD)
    stale = DeadLetter.objects.create(message=died_again, reason="exhausted", resolved_at=now - timedelta(days=50),
                                      resolution="requeued")
    still_open = DeadLetter.objects.create(message=died_again, reason="deadline")

    purge()

    assert set(DeadLetter.objects.values_list("pk", flat=True)) == {recent.pk, still_open.pk}
    assert not DeadLetter.objects.filter(pk__in=[old.pk, stale.pk]).exists()
    assert Message.objects.filter(pk__in=[requeued_lately.pk, died_again.pk]).count() == 2


def test_a_contact_with_nothing_left_is_forgotten_and_one_still_writing_is_kept(tenant, settings):
    settings.RETENTION_DAYS = 30
    conversation(tenant, days=40, phone="+15550000001")
    conversation(tenant, days=40, phone="+15550000002")
    conversation(tenant, days=1, phone="+15550000002")  # wrote again yesterday

    purge()

    assert list(Contact.objects.values_list("phone", flat=True)) == ["+15550000002"]


def test_a_run_deletes_in_batches_and_stops_when_its_time_is_up(tenant, settings):
    settings.RETENTION_DAYS = 30
    for _ in range(7):
        conversation(tenant, days=40, reply_status=None, phone="+15550000009")
    ticks = iter(range(100))

    # Each clock reading is one "second"; a 2-second budget allows two batches of 2.
    first = purge(batch_size=2, max_seconds=2, clock=lambda: next(ticks))

    assert first["messages"] == 4 and first["complete"] is False
    assert Message.objects.count() == 3
    second = purge(batch_size=2)
    assert second["messages"] == 3 and second["complete"] is True
    assert Message.objects.count() == 0


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_beat_schedule_runs_retention_on_a_worker(tenant, start_worker, settings):
    settings.RETENTION_DAYS = 30
    old = conversation(tenant, days=31)
    new = conversation(tenant, days=1)

    start_worker(queues="default", concurrency=1, beat=True, RETENTION_INTERVAL_SECONDS=1, RETENTION_DAYS=30)

    wait_for(lambda: not Message.objects.filter(pk__in=[m.pk for m in old]).exists(), 30,
             message="the beat task to delete the old conversation")
    assert Message.objects.filter(pk__in=[m.pk for m in new]).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_message_from_a_contact_deleted_while_it_is_being_stored_is_kept(tenant, monkeypatch):
    """Retention (or an erasure) deletes a contact in the moment between the webhook
    finding it and storing the message: the message is stored under a new contact, not
    lost to a foreign-key error."""
    import threading

    from django.db import connection

    from whatsapp.inbound import store as inbound_module
    from whatsapp.inbound.store import Inbound, accept_inbound

    Contact.objects.create(tenant=tenant, phone="+15551230000", name="Old")
    find_contact = inbound_module._contact
    raced = []

    def found_then_deleted(inbound):
        contact = find_contact(inbound)
        if not raced:
            raced.append(contact.pk)

            def delete_elsewhere():
                Contact.objects.filter(pk=contact.pk).delete()
                connection.close()

            other = threading.Thread(target=delete_elsewhere)
            other.start()
            other.join(10)
            assert not other.is_alive(), "the contact was locked"
        return contact

    monkeypatch.setattr(inbound_module, "_contact", found_then_deleted)

    message, created = accept_inbound(Inbound(tenant=tenant, provider="baileys", provider_message_id="3Arace1",
                                              phone="+15551230000", body="still there?"))

    assert created and raced
    stored = Message.objects.get(provider_message_id="3Arace1")
    assert stored.body == "still there?" and stored.contact.phone == "+15551230000"
    assert stored.contact_id != raced[0]
