"""The sidecar's answers, sorted into kinds (whatsapp.outbound.providers.baileys): the
real provider (requests, pacing in the suite's Redis) talks over a real socket to a local
server that answers the way the sidecar's POST /sessions/{tenant}/messages does
(whatsapp/sidecar/src/session-manager.js `send`, app.js; DESIGN.md "The sidecar contract"),
or fails the way a network does.

What each kind means for a reply is the delivery rules' job (test_delivery_rules.py)."""

from __future__ import annotations

import pytest

from tests.fakes.scripted_server import Answer, ScriptedServer
from tests.support.ports import free_port
from whatsapp.models import Contact, Message, Tenant
from whatsapp.outbound.providers.baileys import BaileysProvider
from whatsapp.outbound.providers.base import ErrorKind, OutgoingPart, ProviderError

TRANSIENT, PERMANENT, AMBIGUOUS = ErrorKind.TRANSIENT, ErrorKind.PERMANENT, ErrorKind.AMBIGUOUS
UNAVAILABLE, PACED = ErrorKind.UNAVAILABLE, ErrorKind.PACED
# The provider finds the tenant's sidecar from its shard's lease row (none here: a shard
# never owned is reached at SIDECAR_URL, the local server).
pytestmark = pytest.mark.django_db
KEY = "m7-g0-p0"


@pytest.fixture(scope="module")
def server():
    fake = ScriptedServer().start()
    yield fake
    fake.stop()


@pytest.fixture
def baileys(server, settings, redis_server) -> BaileysProvider:
    settings.SIDECAR_URL = server.address
    settings.SIDECAR_READ_TIMEOUT = 1
    return BaileysProvider()


def part(key: str = KEY, per_minute: int = 60000) -> OutgoingPart:
    tenant = Tenant(slug="acme", name="Acme", baileys_sends_per_minute=per_minute)
    contact = Contact(tenant=tenant, phone="+15551234567")
    message = Message(tenant=tenant, contact=contact, body="We open at 9.")
    return OutgoingPart(message=message, to=contact.phone, text=message.body, key=key)


def sidecar_error(status: int, error: str, detail: str = "", **extra) -> Answer:
    return Answer(status, {"error": error, "detail": detail or error, "idempotencyKey": KEY, **extra})


def failure(provider: BaileysProvider, *answers: Answer, server=None, key: str = KEY) -> ProviderError:
    if server is not None:
        server.answer(*answers)
    with pytest.raises(ProviderError) as caught:
        provider.send(part(key))
    return caught.value


@pytest.mark.parametrize("answer, kind", [
    # Written to WhatsApp, or maybe: the sidecar's record of the key says (a lookup).
    (sidecar_error(504, "ack_timeout", "written to WhatsApp, but no server ack within 15000 ms; outcome unknown",
                   messageId="3EB0ABC"), AMBIGUOUS),
    (sidecar_error(504, "send_timeout", "no answer within 30000 ms; outcome unknown"), AMBIGUOUS),
    (sidecar_error(409, "outcome_unknown", "an earlier attempt with this key may have been sent"), AMBIGUOUS),
    # The session cannot send now: the next provider at once.
    (sidecar_error(409, "not_ready", "the session cannot send", canSend=False, connected=False), UNAVAILABLE),
    # Nothing was sent; it may pass later.
    (sidecar_error(500, "store_failed", "could not persist the idempotency record; nothing was sent"), TRANSIENT),
    (sidecar_error(502, "send_failed", "Connection Closed"), TRANSIENT),
    (sidecar_error(401, "unauthorized", "missing or wrong bearer token"), TRANSIENT),
    (sidecar_error(500, "internal_error", "boom"), TRANSIENT),
    # Refused for good.
    (sidecar_error(400, "invalid_request", '"to" must be E.164 digits (optional +) or a user JID'), PERMANENT),
])
def test_each_sidecar_answer_has_its_kind(baileys, server, answer, kind):
    error = failure(baileys, answer, server=server)
    assert (error.kind, error.code) == (kind, answer.body["error"])
    assert f"sidecar {answer.status} {answer.body['error']}" in str(error)


def test_a_proxys_error_page_is_transient_with_its_status(baileys, server):
    error = failure(baileys, Answer(503, raw=b"<html>Service Unavailable</html>"), server=server)
    assert (error.kind, error.code) == (TRANSIENT, "http_503")


def test_no_answer_after_the_request_was_written_is_ambiguous(baileys, server):
    """The sidecar may have sent it: it must be looked up by its key, never simply re-sent."""
    hung = failure(baileys, Answer(200, {"status": "sent", "messageId": "3EB0"}, delay=2.5), server=server)
    assert (hung.kind, hung.code) == (AMBIGUOUS, "read_timeout")
    dropped = failure(baileys, Answer(hang_up=True), server=server, key="m7-g0-p1")
    assert (dropped.kind, dropped.code) == (AMBIGUOUS, "connection")


def test_a_refused_connection_carried_nothing_and_is_transient(baileys, settings):
    settings.SIDECAR_URL = f"http://127.0.0.1:{free_port()}"
    error = failure(BaileysProvider())
    assert (error.kind, error.code) == (TRANSIENT, "sidecar_down")


def test_a_send_beyond_the_sessions_pace_waits_for_its_slot_and_is_not_a_failure(baileys, server):
    server.answer(Answer(200, {"status": "sent", "messageId": "3EB0FIRST", "idempotencyKey": "pace-1"}))
    assert baileys.send(part("pace-1", per_minute=1)) == "3EB0FIRST"
    with pytest.raises(ProviderError) as caught:
        baileys.send(part("pace-2", per_minute=1))
    paced = caught.value
    assert (paced.kind, paced.code) == (PACED, "paced")
    assert 50 < paced.retry_after <= 60  # the next slot of a 1-a-minute session
    assert paced.says_nothing_of_health
    assert len(server.requests) == 1, "the paced send never reached the sidecar"


def test_a_sent_message_returns_its_whatsapp_id(baileys, server):
    server.answer(Answer(200, {"status": "sent", "messageId": "3EB0C0FFEE", "idempotencyKey": KEY,
                               "duplicate": False}))
    assert baileys.send(part()) == "3EB0C0FFEE"
    method, path, _body = server.requests[0]
    assert (method, path) == ("POST", "/sessions/acme/messages")


def test_can_send_is_the_sessions_cansend_and_an_unreachable_sidecar_is_unavailable(baileys, server, settings):
    server.answer(Answer(200, {"connected": True, "canSend": False}))
    assert baileys.can_send(part().message) is False
    server.answer(Answer(200, {"connected": True, "canSend": True}))
    assert baileys.can_send(part().message) is True
    settings.SIDECAR_URL = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProviderError) as caught:
        BaileysProvider().can_send(part().message)
    assert (caught.value.kind, caught.value.code) == (UNAVAILABLE, "sidecar_down")


@pytest.mark.parametrize("record, found", [
    ({"outcome": "sent", "messageId": "3EB0SENT"}, "3EB0SENT"),
    ({"outcome": "failed"}, None),
    ({"outcome": "absent"}, None),
])
def test_lookup_reads_the_sidecars_record_of_the_key(baileys, server, record, found):
    server.answer(Answer(200, {"idempotencyKey": KEY, **record}))
    assert baileys.lookup(part(), since=None) == found
    assert server.requests[0][:2] == ("GET", f"/sessions/acme/messages/{KEY}")


def test_a_lookup_that_cannot_tell_stays_ambiguous(baileys, server):
    server.answer(Answer(200, {"idempotencyKey": KEY, "outcome": "pending"}))
    with pytest.raises(ProviderError) as caught:
        baileys.lookup(part(), since=None)
    assert (caught.value.kind, caught.value.code) == (AMBIGUOUS, "outcome_unknown")
    server.answer(Answer(502, raw=b"<html>Bad Gateway</html>"))
    with pytest.raises(ProviderError) as caught:
        baileys.lookup(part(), since=None)
    assert (caught.value.kind, caught.value.code) == (AMBIGUOUS, "lookup")


def test_a_key_used_for_other_text_is_refused_for_good_not_retried_against_the_sessions_health(baileys, server):
    """Fixed: 409 idempotency_key_conflict was transient: retried until exhausted, each
    time counted against the session's breaker, though the sidecar refuses it the same way
    every time. Now permanent: the next provider at once."""
    error = failure(baileys, sidecar_error(409, "idempotency_key_conflict",
                                           "this key was used for a different recipient or text"), server=server)
    assert (error.kind, error.code) == (PERMANENT, "idempotency_key_conflict")
    assert error.says_nothing_of_health


def test_a_200_without_a_message_id_is_ambiguous(baileys, server):
    """Fixed: it was transient, though the sidecar may have sent it; now its record of the
    key is asked first (lookup)."""
    error = failure(baileys, Answer(200, {"status": "sent"}), server=server)
    assert (error.kind, error.code) == (AMBIGUOUS, "no_message_id")


def test_an_unresolvable_sidecar_host_carried_nothing_and_is_transient(baileys, settings):
    """Fixed: only "refused" counted as never sent; a name that does not resolve was
    ambiguous, and a reply could end as a dead letter "may have been sent" when nothing
    had left."""
    settings.SIDECAR_URL = "http://sidecar.invalid:3001"  # .invalid never resolves (RFC 2606)
    error = failure(BaileysProvider())
    assert (error.kind, error.code) == (TRANSIENT, "sidecar_down")
