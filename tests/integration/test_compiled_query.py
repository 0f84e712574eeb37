"""project.compiled_query against the queryset it replaces, on the real database: the
same objects, related objects and annotations, for one row after another; the same rows
changed by an update, with the worker's clock, the database's and a duration as parameters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from project.compiled_query import CompiledRead, CompiledUpdate
from whatsapp.models import Contact, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def with_reply_to(pk):
    return (Message.objects.select_related("tenant", "contact")
            .annotate(inbound_created_at=F("in_reply_to__created_at")).filter(pk=pk))


def test_a_compiled_read_returns_what_its_queryset_returns(tenant):
    contact = Contact.objects.create(tenant=tenant, phone="+15550000001", name="Dana")
    inbound = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, body="hi")
    reply = Message.objects.new_outbound(tenant=tenant, contact=contact, body="hello", in_reply_to=inbound)
    read = CompiledRead(with_reply_to)

    for message in (reply, inbound):  # compiled on the first, reused for the second
        got, expected = read.get(message.pk), with_reply_to(message.pk).get()
        assert [getattr(got, f.attname) for f in Message._meta.concrete_fields] == \
               [getattr(expected, f.attname) for f in Message._meta.concrete_fields]
        assert got.tenant.slug == tenant.slug and got.contact.phone == contact.phone
        assert got.inbound_created_at == expected.inbound_created_at
        assert got._state.adding is False
    assert read.get(reply.pk).inbound_created_at == inbound.created_at
    assert read.get(inbound.pk).inbound_created_at is None
    assert read.get(10**9) is None


def test_a_compiled_read_takes_datetimes_and_finds_the_rows_the_queryset_finds(tenant):
    contact = Contact.objects.create(tenant=tenant, phone="+15550000002")
    first = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, body="one")
    second = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND, body="two")
    Message.objects.filter(pk=second.pk).update(created_at=first.created_at + timedelta(minutes=5))

    def since(contact_id, at):
        return Message.objects.filter(contact_id=contact_id, created_at__gte=at).order_by("pk")

    read = CompiledRead(since)
    for at in (first.created_at, first.created_at + timedelta(minutes=1), first.created_at + timedelta(hours=1)):
        assert [m.pk for m in read.all(contact.pk, at)] == [m.pk for m in since(contact.pk, at)]
    assert [m.body for m in read.all(contact.pk, first.created_at + timedelta(minutes=1))] == ["two"]
    with pytest.raises(TypeError):
        read.all(contact.pk, None)  # compiled for a datetime: a None would need other SQL (IS NULL)


def claim_like(pk, due_by, now, lease):
    """The shape of the send task's claim: a conditional UPDATE with the worker's clock,
    the database's clock and a duration."""
    return (Message.objects.filter(pk=pk).filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=due_by)),
            {"status": Status.SENDING, "lease_until": Now() + lease, "updated_at": now})


def test_a_compiled_update_changes_what_the_queryset_update_changes(tenant):
    contact = Contact.objects.create(tenant=tenant, phone="+15550000003")
    due = Message.objects.new_outbound(tenant=tenant, contact=contact, body="due")
    later = Message.objects.new_outbound(tenant=tenant, contact=contact, body="later")
    now = timezone.now()
    Message.objects.filter(pk=later.pk).update(next_attempt_at=now + timedelta(minutes=10))
    update = CompiledUpdate(claim_like)

    assert update.run(due.pk, now, now, timedelta(seconds=180)) == 1
    assert update.run(later.pk, now, now, timedelta(seconds=180)) == 0  # not due: nothing changed
    assert Message.objects.get(pk=later.pk).status == Status.QUEUED
    claimed = Message.objects.get(pk=due.pk)
    assert claimed.status == Status.SENDING and claimed.updated_at == now
    assert timedelta(seconds=170) < claimed.lease_until - now < timedelta(seconds=190)

    # Reused with other values: the later one once it is due, and a lease of another length.
    assert update.run(later.pk, now + timedelta(minutes=11), now, timedelta(seconds=5)) == 1
    assert Message.objects.get(pk=later.pk).lease_until - now < timedelta(seconds=60)
    queryset, values = claim_like(due.pk, now, now, timedelta(seconds=5))
    assert queryset.update(**values) == 1  # the queryset itself agrees on the same row


def test_a_compiled_update_inside_a_transaction_rolls_back_with_it(tenant):
    contact = Contact.objects.create(tenant=tenant, phone="+15550000004")
    reply = Message.objects.new_outbound(tenant=tenant, contact=contact, body="hi")
    update = CompiledUpdate(claim_like)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert update.run(reply.pk, timezone.now(), timezone.now(), timedelta(seconds=30)) == 1
        raise RuntimeError("the caller's work failed")
    assert Message.objects.get(pk=reply.pk).status == Status.QUEUED
