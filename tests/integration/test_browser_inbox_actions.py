"""The conversation page's newer controls in a real browser (as test_browser_inbox): a dead
letter's Requeue button in the thread, and a template chosen while Twilio's 24-hour window
is closed; a real send worker delivers both to the fake Twilio."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User

from tests.support.browser import PASSWORD, log_in
from tests.support.waiting import wait_for
from whatsapp.inbox.models import ReplyTemplate
from whatsapp.models import Contact, DeadLetter, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PHONE = "+15551234567"
DEFAULT = "HX" + "1" * 32
SHIPPING = "HX" + "a" * 32


@pytest.fixture
def resolver(db):
    user = User.objects.create_user("sam", password=PASSWORD, is_staff=True, first_name="Sam", last_name="Lee")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["use_inbox", "resolve_deadletter"]))
    return user


def test_requeue_a_dead_letter_and_send_a_template_from_the_thread(
    page, resolver, tenant, twilio, start_worker, live_server
):
    tenant.twilio_template_sid = DEFAULT
    tenant.save()
    ReplyTemplate.objects.create(tenant=tenant, name="Shipping", content_sid=SHIPPING, variables={"1": "Monday"},
                                 text="Your order ships on Monday.")
    start_worker(queues="send")
    contact = Contact.objects.create(tenant=tenant, phone=PHONE, name="Dana")  # window closed: never wrote
    dead = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.OUTBOUND, status=Status.DEAD,
                                  body="Your cake is ready.", engine="rules")
    DeadLetter.objects.create(message=dead, kind=DeadLetter.Kind.OUTBOUND, reason=DeadLetter.Reason.EXHAUSTED)

    log_in(page, resolver)
    page.goto(f"{live_server.url}/admin/inbox/acme/{contact.pk}/")
    page.wait_for_selector(".bubble .dead")
    page.click("button.dl-action[data-action=requeue]")
    page.wait_for_selector(".bubble .dead", state="detached", timeout=10_000)  # resolved: no longer dead
    wait_for(lambda: twilio.sent_to(PHONE), 20, message="the requeued reply, as the default template")

    assert "approved templates" in page.inner_text("#window")
    page.select_option("#template-choice", label="Shipping: Your order ships on Monday.")
    page.click("#reply-form input[type=submit]")
    page.wait_for_selector(".bubble.out.staff:has-text('Your order ships on Monday.')")
    sent = wait_for(lambda: len(twilio.sent_to(PHONE)) == 2 and twilio.sent_to(PHONE), 20, message="the template")
    assert [(m["content_sid"], json.loads(m["content_variables"] or "{}")) for m in sent] == [
        (DEFAULT, {}), (SHIPPING, {"1": "Monday"}),
    ]
    assert page.input_value("#template-choice") == ""
