"""The fake Twilio behaves as Twilio documents where our code depends on it: DateSent
filters on the sent date and leaves out messages still queued, the list is newest first
and paged through next_page_uri, a single message can be fetched, and status callbacks
are signed like Twilio's. The real twilio client is the one reading it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator

from tests.support.waiting import wait_for
from whatsapp.outbound.providers.twilio import TwilioProvider

SENDER = "whatsapp:+14155238886"
CUSTOMER = "whatsapp:+15551234567"


@pytest.fixture
def client(twilio):
    return TwilioProvider().client


def send(client, body: str, to: str = CUSTOMER, **extra):
    return client.messages.create(from_=SENDER, to=to, body=body, **extra)


def test_a_queued_message_has_no_date_sent_and_no_date_sent_filter_returns_it(client, twilio):
    twilio.faults.queued_seconds = 30
    created = send(client, "still queued")
    fetched = client.messages(created.sid).fetch()
    assert (fetched.status, fetched.date_sent) == ("queued", None)
    today = datetime.now(UTC)
    assert [m.sid for m in client.messages.list(to=CUSTOMER)] == [created.sid]
    assert client.messages.list(to=CUSTOMER, date_sent_after=today - timedelta(days=1)) == []
    assert client.messages.list(to=CUSTOMER, date_sent=today) == []
    assert client.messages.list(to=CUSTOMER, date_sent_before=today + timedelta(days=1)) == []


def test_date_sent_is_a_date_so_the_time_of_day_is_ignored(client, twilio):
    sent = send(client, "sent a moment ago")
    wait_for(lambda: client.messages(sent.sid).fetch().date_sent, 5, message="the message to be sent")
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    if in_an_hour.date() == datetime.now(UTC).date():
        # "on or after midnight of that date": an hour from now is still today.
        assert [m.sid for m in client.messages.list(date_sent_after=in_an_hour)] == [sent.sid]
    assert client.messages.list(date_sent_after=datetime.now(UTC) + timedelta(days=1)) == []


def test_the_list_is_newest_first_and_paged_through_next_page_uri(client, twilio):
    sids = [send(client, f"message {i}").sid for i in range(7)]
    wait_for(lambda: all(m["status"] == "delivered" for m in twilio.messages), 5, message="all delivered")
    page = client.messages.page(to=CUSTOMER, page_size=3)
    assert [m.sid for m in page] == sids[::-1][:3]
    assert "PageToken=PA" in page._payload["next_page_uri"]
    everything = client.messages.list(to=CUSTOMER, page_size=3)  # the client follows the pages
    assert [m.sid for m in everything] == sids[::-1]
    assert [m.sid for m in client.messages.list(to=CUSTOMER, limit=4, page_size=3)] == sids[::-1][:4]
    assert client.messages.list(to="whatsapp:+15550000000") == []


def test_a_page_size_above_twilio_s_maximum_is_refused(client, twilio):
    with pytest.raises(TwilioException, match="PageSize"):
        client.messages.page(page_size=1001)


def test_an_unknown_message_is_a_404(client, twilio):
    with pytest.raises(TwilioRestException) as err:
        client.messages("SM" + "0" * 32).fetch()
    assert err.value.status == 404


def test_the_message_resource_hides_the_status_callback_and_content_sid(client, twilio):
    created = send(client, "", content_sid="HX" + "1" * 32, status_callback="https://example.com/cb?key=k:0")
    payload = client.messages(created.sid).fetch()
    assert not hasattr(payload, "status_callback") and not hasattr(payload, "content_sid")
    assert payload.body, "Twilio renders a template into the body"


class CallbackSink:
    """Receives status callbacks and checks them the way Django's webhook does."""

    def __init__(self, token: str):
        self.received: list[tuple[dict, bool]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                form = dict(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
                valid = RequestValidator(token).validate(url, form, self.headers.get("X-Twilio-Signature", ""))
                sink.received.append((form, valid))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/status/?key=abc:0"

    def statuses(self) -> list[str]:
        return [form["MessageStatus"] for form, _ in self.received]


@pytest.fixture
def sink(twilio):
    server = CallbackSink(twilio.auth_token)
    yield server
    server.server.shutdown()


def test_status_callbacks_are_signed_and_follow_queued_sent_delivered(client, twilio, sink):
    created = send(client, "hello", status_callback=sink.url)
    wait_for(lambda: len(sink.received) == 3, 5, message="three callbacks")
    assert sorted(sink.statuses()) == sorted(["queued", "sent", "delivered"])
    assert all(valid for _, valid in sink.received), "signed with the account's auth token, like Twilio"
    assert {form["MessageSid"] for form, _ in sink.received} == {created.sid}


def test_an_undelivered_message_reports_its_error_code(client, twilio, sink):
    twilio.faults.receipt_failures = {CUSTOMER.removeprefix("whatsapp:"): ["undelivered", 63024]}
    created = send(client, "hello", status_callback=sink.url)
    wait_for(lambda: "undelivered" in sink.statuses(), 5, message="the undelivered callback")
    form = next(form for form, _ in sink.received if form["MessageStatus"] == "undelivered")
    assert form["ErrorCode"] == "63024"
    assert client.messages(created.sid).fetch().error_code == 63024


def test_callbacks_come_the_configured_time_after_the_change(client, twilio, sink):
    twilio.faults.callback_delay_seconds = 1.0
    send(client, "hello", status_callback=sink.url)
    assert sink.received == []
    wait_for(lambda: len(sink.received) == 3, 5, message="the delayed callbacks")
