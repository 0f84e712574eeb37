"""Templates when Twilio's 24-hour window is closed: the conversation page offers the
tenant's approved templates, and the chosen one goes out (its ContentSid and variables
through Twilio, through a real send worker and the fake Twilio)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from tests.support.inbox import PHONE
from tests.support.waiting import wait_for
from whatsapp.inbox.models import ReplyTemplate
from whatsapp.inbox.replies import ReplyRefused, send_staff_reply
from whatsapp.models import Contact, Message, Status, Tenant

pytestmark = pytest.mark.django_db

SHIPPING = "HX" + "a" * 32
APOLOGY = "HX" + "b" * 32


@pytest.fixture
def staff(db):
    user = User.objects.create_user("sam", password="pw", is_staff=True, first_name="Sam")
    user.user_permissions.add(Permission.objects.get(codename="use_inbox"))
    return user


@pytest.fixture
def templates(tenant):
    return [
        ReplyTemplate.objects.create(tenant=tenant, name="Shipping", content_sid=SHIPPING, variables={"1": "Monday"},
                                     text="Your order ships on Monday."),
        ReplyTemplate.objects.create(tenant=tenant, name="Apology", content_sid=APOLOGY,
                                     text="Sorry for the wait! Write to us to continue."),
    ]


def window_of(client, contact) -> dict:
    return client.get(f"/admin/inbox/acme/{contact.pk}/thread.json").json()["window"]


def test_the_page_offers_the_templates_only_while_the_window_is_closed(client, tenant, staff, templates):
    client.force_login(staff)
    closed = Contact.objects.create(tenant=tenant, phone=PHONE)  # never wrote through Twilio
    opened = Contact.objects.create(tenant=tenant, phone="+15550002222", last_twilio_inbound_at=timezone.now())
    other = Tenant.objects.create(slug="deli", name="Deli")
    ReplyTemplate.objects.create(tenant=other, name="Deli only", content_sid="HX" + "c" * 32, text="x")

    offered = window_of(client, closed)
    assert not offered["open"]
    assert [(t["name"], t["text"]) for t in offered["templates"]] == [
        ("Apology", "Sorry for the wait! Write to us to continue."), ("Shipping", "Your order ships on Monday."),
    ]
    assert window_of(client, opened)["templates"] == []
    page = client.get(f"/admin/inbox/acme/{closed.pk}/").content.decode()
    assert 'name="template"' in page


def test_choosing_a_template_stores_its_text_and_sid_for_delivery(client, tenant, staff, templates):
    client.force_login(staff)
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    response = client.post(f"/admin/inbox/acme/{contact.pk}/reply/", {"body": "", "template": templates[0].pk},
                           HTTP_ACCEPT="application/json")
    assert response.json() == {"ok": True}
    reply = Message.objects.get(author=staff)
    assert (reply.body, reply.template_sid) == ("Your order ships on Monday.", SHIPPING)


def test_a_template_of_another_tenant_or_a_bad_id_is_refused(tenant, staff, templates):
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    foreign = ReplyTemplate.objects.create(tenant=Tenant.objects.create(slug="deli", name="Deli"), name="x",
                                           content_sid="HX" + "c" * 32, text="x")
    for choice in (foreign.pk, "1 OR 1=1", 999999):
        with pytest.raises(ReplyRefused, match="No such template"):
            send_staff_reply(contact, staff, "", choice)
    assert not Message.objects.exists()


def test_without_templates_a_closed_window_still_refuses_free_text(tenant, staff):
    contact = Contact.objects.create(tenant=tenant, phone=PHONE)
    with pytest.raises(ReplyRefused, match="24-hour window"):
        send_staff_reply(contact, staff, "Hello?")


def test_a_bad_content_sid_is_refused_by_the_form(tenant):
    template = ReplyTemplate(tenant=tenant, name="x", content_sid="not-a-sid", text="x")
    with pytest.raises(Exception, match="ContentSid"):
        template.full_clean()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_chosen_template_goes_out_through_twilio_with_its_variables(tenant, staff, templates, twilio, start_worker):
    tenant.twilio_template_sid = APOLOGY  # the default would be the other one
    tenant.save()
    start_worker()
    contact = Contact.objects.create(tenant=tenant, phone=PHONE,
                                     last_twilio_inbound_at=timezone.now() - timedelta(days=2))

    reply = send_staff_reply(contact, staff, "", templates[0].pk)

    sent = wait_for(lambda: twilio.sent_to(PHONE), 20, message="the template at Twilio")
    assert [(m["content_sid"], json.loads(m["content_variables"])) for m in sent] == [(SHIPPING, {"1": "Monday"})]
    reply = wait_for(lambda: Message.objects.filter(pk=reply.pk, status=Status.SENT).first(), 10)
    assert reply.template_sid == SHIPPING and reply.author == staff
