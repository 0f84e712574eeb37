"""Twilio's errors, sorted into kinds (whatsapp.outbound.providers.twilio.classify): the
real twilio client sends over a real socket to a local server that answers the way
Twilio's REST API does (a JSON error body with `code`, `message`, `more_info`, `status`:
https://www.twilio.com/docs/usage/twilios-response#response-formats-exceptions; the
codes: https://www.twilio.com/docs/api/errors), or fails the way a network does.

What each kind means for a reply is the delivery rules' job (test_delivery_rules.py):
transient retries the same provider, permanent fails over at once, ambiguous is asked
about before anything is sent again."""

from __future__ import annotations

import pytest

from tests.fakes.scripted_server import Answer, ScriptedServer
from tests.support.ports import free_port
from whatsapp.models import Contact, Message, Tenant
from whatsapp.outbound.providers.base import ErrorKind, OutgoingPart, ProviderError
from whatsapp.outbound.providers.twilio import TwilioProvider

TRANSIENT, PERMANENT, AMBIGUOUS = ErrorKind.TRANSIENT, ErrorKind.PERMANENT, ErrorKind.AMBIGUOUS


@pytest.fixture(scope="module")
def server():
    fake = ScriptedServer().start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio(server, settings) -> TwilioProvider:
    settings.TWILIO_API_BASE_URL = server.address
    settings.TWILIO_READ_TIMEOUT = 1
    settings.PUBLIC_BASE_URL = ""
    return TwilioProvider()


def part(template_sid: str = "") -> OutgoingPart:
    tenant = Tenant(slug="acme", name="Acme", twilio_number="+14155238886")
    contact = Contact(tenant=tenant, phone="+15551234567")
    message = Message(tenant=tenant, contact=contact, body="We open at 9.")
    return OutgoingPart(message=message, to=contact.phone, text=message.body, key="m1-g0-p0",
                        template_sid=template_sid)


def twilio_error(status: int, code: int, message: str) -> Answer:
    return Answer(status, {"code": code, "message": message,
                           "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status})


def failure(provider: TwilioProvider, *answers: Answer, server=None) -> ProviderError:
    if server is not None:
        server.answer(*answers)
    with pytest.raises(ProviderError) as caught:
        provider.send(part())
    return caught.value


@pytest.mark.parametrize("status, code, kind", [
    # Rate limits and Twilio-side trouble: the same request may pass later.
    (429, 20429, TRANSIENT),  # Too Many Requests
    (400, 63018, TRANSIENT),  # WhatsApp's rate limit for the sender
    (500, 20500, TRANSIENT),
    (503, 20503, TRANSIENT),
    # Refusals that will be the same every time: the next provider at once.
    (400, 21211, PERMANENT),  # invalid 'To' number
    (400, 21408, PERMANENT),  # region not enabled
    (400, 21610, PERMANENT),  # the customer replied STOP (the executor marks them opted out)
    (400, 21614, PERMANENT),  # not a mobile number
    (400, 63016, PERMANENT),  # outside the 24-hour window: a template is needed
    (400, 63024, PERMANENT),  # invalid recipient
    (401, 20003, PERMANENT),  # our credentials: staff fix them and requeue (dead_letter_reasons)
    (404, 20404, PERMANENT),  # wrong account or sender
    (400, 21999, PERMANENT),  # any other 4xx will not pass by retrying
])
def test_each_twilio_error_code_has_its_kind(twilio, server, status, code, kind):
    error = failure(twilio, twilio_error(status, code, "refused"), server=server)
    assert (error.kind, error.code) == (kind, str(code))
    assert f"Twilio {status} {code}" in str(error)
    assert len(server.requests) == 1, "one request, no retry inside the client"


def test_a_permanent_refusal_is_not_counted_against_twilios_health(twilio, server):
    # A bad number says nothing about Twilio: the breaker must not open on it.
    assert failure(twilio, twilio_error(400, 21211, "invalid To"), server=server).says_nothing_of_health
    assert not failure(twilio, twilio_error(503, 20503, "unavailable"), server=server).says_nothing_of_health


def test_an_rfc9457_problem_answer_is_classified_like_the_classic_one(twilio, server):
    # Twilio's newer APIs answer errors as RFC 9457 problem details (TwilioServiceException).
    problem = {"type": "https://www.twilio.com/docs/errors/21211", "title": "Invalid 'To' Phone Number",
               "status": 400, "code": 21211, "detail": "+1555 is not a valid phone number"}
    error = failure(twilio, Answer(400, problem), server=server)
    assert (error.kind, error.code) == (PERMANENT, "21211")
    overloaded = dict(problem, status=503, code=20503, title="Service Unavailable")
    assert failure(twilio, Answer(503, overloaded), server=server).kind == TRANSIENT


def test_a_proxys_error_page_without_a_twilio_code_is_classified_by_its_status(twilio, server):
    error = failure(twilio, Answer(502, raw=b"<html>Bad Gateway</html>"), server=server)
    assert (error.kind, error.code) == (TRANSIENT, "502")
    error = failure(twilio, Answer(403, raw=b"<html>Forbidden</html>"), server=server)
    assert (error.kind, error.code) == (PERMANENT, "403")


def test_no_answer_after_the_request_was_written_is_ambiguous(twilio, server):
    """Twilio may have created the message: it must be looked up, never simply re-sent."""
    hung = failure(twilio, Answer(201, {"sid": "SM1"}, delay=2.5), server=server)
    assert (hung.kind, hung.code) == (AMBIGUOUS, "read_timeout")
    dropped = failure(twilio, Answer(hang_up=True), server=server)
    assert (dropped.kind, dropped.code) == (AMBIGUOUS, "read_timeout")
    assert len(server.requests) == 1, "the request did reach the server"


def test_a_refused_connection_carried_nothing_and_is_transient(twilio, settings):
    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    error = failure(TwilioProvider())
    assert (error.kind, error.code) == (TRANSIENT, "connection")
    assert "refused" in str(error)


def test_an_accepted_message_returns_twilios_sid(twilio, server):
    server.answer(Answer(201, {"sid": "SM" + "a" * 32, "status": "queued", "body": "We open at 9."}))
    assert twilio.send(part()) == "SM" + "a" * 32
    method, path, body = server.requests[0]
    assert method == "POST" and path.endswith("/Messages.json")
    assert b"To=whatsapp%3A%2B15551234567" in body


def test_an_accepted_send_whose_answer_cannot_be_read_is_ambiguous_not_retried(twilio, server):
    """Fixed: a 2xx whose body is garbled (a proxy, a cut connection) was transient, and
    the retry would have sent the customer a second copy of what Twilio had created."""
    garbled = failure(twilio, Answer(201, raw=b"<html>OK</html>"), server=server)
    assert (garbled.kind, garbled.code) == (AMBIGUOUS, "unreadable_answer")
    # Fixed too: a 2xx without a sid was taken as sent, with no id for receipts to find.
    no_sid = failure(twilio, Answer(201, {"status": "queued"}), server=server)
    assert (no_sid.kind, no_sid.code) == (AMBIGUOUS, "no_sid")


def test_an_unresolvable_host_carried_nothing_and_is_transient(twilio, settings):
    settings.TWILIO_API_BASE_URL = "http://twilio-api.invalid"  # .invalid never resolves (RFC 2606)
    error = failure(TwilioProvider())
    assert (error.kind, error.code) == (TRANSIENT, "connection")
