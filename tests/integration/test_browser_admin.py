"""The admin in a real browser (headless Debian Chromium driven by Playwright): staff log
in, requeue a dead letter with the bulk action and watch the message turn "Sent" as a
real Celery worker delivers it to the (fake) Twilio API; and the Sessions page shows the
pairing QR code as an image the browser really decoded.

Chromium comes from Debian (scripts/test.sh installs the `chromium` package); Playwright
only drives it: its own browser download cannot work here and is never run."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Permission, User

from tests.support.browser import PASSWORD, assert_styled, log_in
from tests.support.delivery import drive, make_reply
from whatsapp.models import DeadLetter, Message, SessionState, Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PHONE = "+15551234567"


@pytest.fixture
def staff(db):
    """A staff member who may resolve dead letters, look at messages and pair sessions."""
    user = User.objects.create_user("sam", password=PASSWORD, is_staff=True)
    for codename in ("view_deadletter", "change_deadletter", "resolve_deadletter", "view_message",
                     "view_sessionstate", "manage_session"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_staff_requeue_a_dead_letter_in_the_browser_and_see_it_sent(
    page, staff, tenant, twilio, start_worker, tmp_path
):
    # A reply dead-lettered because Twilio called the number invalid; the number is then fixed.
    twilio.faults.invalid_numbers = {PHONE}
    message = drive(make_reply(tenant, body="Your cake is ready for pickup.", phone=PHONE))
    twilio.faults.invalid_numbers = set()
    assert message.status == Status.DEAD
    letter = DeadLetter.objects.get(message=message)
    start_worker(queues="send")

    log_in(page, staff)
    page.goto("/admin/whatsapp/deadletter/")
    assert "1 open dead letter" in page.inner_text("#content")
    assert_styled(page)
    page.screenshot(path=tmp_path / "dead-letters.png", full_page=True)

    page.check(f"input[name=_selected_action][value='{letter.pk}']")
    page.select_option("select[name=action]", label="Requeue selected dead letters")
    page.click("button[name=index]")
    assert "Requeued 1" in page.inner_text(".messagelist")
    page.screenshot(path=tmp_path / "requeued.png", full_page=True)

    # The worker delivers it; the message's page says so (it refreshes by reload).
    page.goto(f"/admin/whatsapp/message/{message.pk}/change/")
    status = page.locator(".field-status .readonly")
    deadline = time.monotonic() + 30
    while not status.inner_text().startswith("Sent") and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    page.screenshot(path=tmp_path / "message-sent.png", full_page=True)
    assert status.inner_text().startswith("Sent"), status.inner_text()

    assert [m["body"] for m in twilio.sent_to(PHONE)] == ["Your cake is ready for pickup."]
    message.refresh_from_db()
    assert message.status == Status.SENT and message.provider == "twilio"
    assert Message.objects.get(pk=message.pk).idempotency_key == message.idempotency_key


def test_the_sessions_page_shows_the_pairing_qr_code_as_an_image(page, staff, tenant, tmp_path):
    SessionState.objects.create(tenant=tenant, desired="running", status="qr",
                                qr="2@Xk3v9Qm1Lr7TzN0pWc5Hd8Ys2Bf4Gj6A,bG9uZ2tleQ==,c2lnbmVka2V5,ZGV2aWNl")

    log_in(page, staff)
    page.goto("/admin/whatsapp/sessionstate/")
    page.screenshot(path=tmp_path / "sessions.png", full_page=True)
    page.click(f"#result_list tr:has-text('{tenant.slug}') th a")  # the tenant opens its session
    page.wait_for_url(f"**/admin/whatsapp/sessionstate/tenant/{tenant.slug}/")
    qr = page.locator("img#session-qr")
    qr.wait_for(state="visible")
    assert_styled(page)
    page.screenshot(path=tmp_path / "session-qr.png", full_page=True)

    # The browser decoded the image (an undecodable data URI has a natural width of 0),
    # and it is drawn at a size a phone camera can read.
    assert qr.evaluate("img => img.complete && img.naturalWidth") > 0
    box = qr.bounding_box()
    assert box and box["width"] >= 200 and box["height"] >= 200
    assert qr.get_attribute("src").startswith("data:image/svg+xml")


def test_the_dead_letter_list_fits_1280_px_and_discard_asks_first(page, staff, tenant, twilio, tmp_path):
    twilio.faults.invalid_numbers = {PHONE}
    long_answer = "We are open Sunday to Friday from eight to six, and on holidays from ten to two. " * 6
    message = drive(make_reply(tenant, body=long_answer, phone=PHONE))
    letter = DeadLetter.objects.get(message=message)

    log_in(page, staff)
    page.goto("/admin/whatsapp/deadletter/")
    page.screenshot(path=tmp_path / "dead-letter-list.png", full_page=True)
    content = page.inner_text("#result_list")
    assert "When do you close?" in content and "The number is not on WhatsApp" in content
    # Nothing is pushed off-screen at 1280 px: no horizontal scrolling of the page or the table.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.eval_on_selector("#result_list", "t => t.getBoundingClientRect().right") <= 1280

    page.goto(f"/admin/whatsapp/deadletter/{letter.pk}/resolve/")
    discard = page.locator("input.discard")
    background = discard.evaluate("e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(186, 33, 33)", background  # the admin's red for destructive actions
    page.screenshot(path=tmp_path / "dead-letter-resolve.png", full_page=True)
    discard.click()  # without ticking the box: nothing happens but a warning
    assert "Tick the box" in page.inner_text(".messagelist")
    letter.refresh_from_db()
    assert letter.resolved_at is None

    page.check("#id_confirm_discard")
    page.locator("input.discard").click()
    assert "Discarded." in page.inner_text(".messagelist")
    letter.refresh_from_db()
    assert letter.resolution == "discarded"
