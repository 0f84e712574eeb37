"""The inbox in a real browser (Debian's Chromium driven by Playwright, as in
test_browser_admin): staff open the inbox, read a thread, take over, reply, and see the
delivery ticks change without reloading, as a real worker sends the reply to the fake
Twilio and its signed status callbacks reach the live server.

Set SCREENSHOTS_DIR=docs/img to refresh the screenshots of docs/STAFF.md."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from tests.support.browser import PASSWORD, log_in
from tests.support.waiting import wait_for
from whatsapp.models import Contact, Direction, Message, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PHONE = "+15551234567"


@pytest.fixture
def staff(db):
    user = User.objects.create_user("sam", password=PASSWORD, is_staff=True, first_name="Sam", last_name="Lee")
    user.user_permissions.add(Permission.objects.get(codename="use_inbox"))
    return user


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return lambda browser_page, name: browser_page.screenshot(path=folder / f"inbox-{name}.png", full_page=True)


def test_staff_take_over_reply_and_see_the_ticks_change_without_reloading(
    page, staff, tenant, twilio, start_worker, live_server, settings, shots
):
    settings.PUBLIC_BASE_URL = live_server.url  # Twilio's status callbacks come to the live server
    twilio.faults.callback_delay_seconds = 1.5  # time to see "sent" before "delivered"
    start_worker(queues="send", PUBLIC_BASE_URL=live_server.url)
    contact = Contact.objects.create(tenant=tenant, phone=PHONE, name="Dana",
                                     last_twilio_inbound_at=timezone.now())
    asked = timezone.now() - timedelta(minutes=3)
    question = Message.objects.create(tenant=tenant, contact=contact, direction=Direction.INBOUND,
                                      status=Status.ANSWERED, body="Do you have gluten-free bread?", created_at=asked)
    Message.objects.create(tenant=tenant, contact=contact, direction=Direction.OUTBOUND, status=Status.READ,
                           body="Thanks for your message! A member of our team will get back to you soon.",
                           in_reply_to=question, engine="rules", provider="twilio",
                           created_at=asked + timedelta(seconds=2))

    log_in(page, staff)
    page.click("#inbox-link a")
    page.wait_for_url("**/admin/inbox/acme/")  # one tenant: straight to its conversations
    assert "Dana" in page.inner_text("#inbox-conversations")
    assert page.inner_text(".inbox-unread") == "1"
    shots(page, "list")

    page.click("#inbox-conversations a:has-text('Dana')")
    page.wait_for_selector(".bubble.in:has-text('gluten-free')")
    assert "Bot (rules) via twilio" in page.inner_text(".bubble.out")
    assert "The bot answers this conversation." in page.inner_text("#state")

    page.click("#take-over input[type=submit]")
    page.wait_for_selector("#state:has-text('Bot paused')")
    assert page.is_visible("#hand-back") and not page.is_visible("#take-over")
    assert "Bot paused by Sam Lee" in page.inner_text("#thread")

    url = page.url
    page.fill("#reply-form textarea", "Yes! Our rye loaf is gluten-free. Shall I keep one for you?")
    page.click("#reply-form input[type=submit]")
    mine = page.locator(".bubble.out.staff")
    mine.wait_for()
    assert "Sam Lee" in mine.inner_text()
    # Queued first (a clock), then sent or already delivered (a poll may miss "sent").
    page.wait_for_selector(".bubble.out.staff .ticks[data-status=sent], "
                           ".bubble.out.staff .ticks[data-status=delivered]", timeout=20_000)
    shots(page, "conversation")
    page.wait_for_selector(".bubble.out.staff .ticks[data-status=delivered]", timeout=20_000)
    assert page.url == url, "the page was not reloaded"
    assert page.input_value("#reply-form textarea") == ""

    assert [m["body"] for m in twilio.sent_to(PHONE)] == ["Yes! Our rye loaf is gluten-free. Shall I keep one for you?"]
    reply = wait_for(lambda: Message.objects.filter(author=staff).first(), 5)
    assert reply.status == Status.DELIVERED
