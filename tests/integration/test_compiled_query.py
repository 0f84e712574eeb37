"""project.compiled_query against the queryset it replaces, on the real database: the
same objects, related objects and annotations, for one row after another."""

from __future__ import annotations

import pytest
from django.db.models import F

from project.compiled_query import CompiledRead
from whatsapp.models import Contact, Direction, Message

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
