"""Fuzzed webhooks: thousands of malformed, oversized, mis-signed and mis-encoded requests
against both providers' webhooks (inbound and status). Whatever arrives, the answer is
never a 5xx; a request that is not properly signed, or not a message, stores nothing and
enqueues nothing on the real broker; and a properly signed message with odd content is
either accepted (stored once, one reply task) or refused with a 4xx, never half-done.

Each test draws its examples inside one test call (one database transaction, one broker),
so the fixtures are set up once per property rather than once per example."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings as django_settings
from django.http import QueryDict
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.twilio_webhooks import twilio_form, twilio_signature
from whatsapp.inbound.signatures import sidecar_signature
from whatsapp.models import Contact, Message, Provider, Status

pytestmark = pytest.mark.django_db

# 300 examples per property, ten properties: about 3,300 requests in ~35 s.
EXAMPLES = 300
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow],
)

TWILIO_PATHS = ("/webhooks/twilio/acme/", "/webhooks/twilio/acme/status/")
BAILEYS_PATHS = ("/webhooks/baileys/acme/", "/webhooks/baileys/acme/status/")
QUEUES = ("ai", "send", "default", "baileys")

# Header values as a real WSGI server hands them to Django: bytes decoded as latin-1.
header_text = st.text(alphabet=st.characters(max_codepoint=255, exclude_categories=["Cs"]), max_size=80)
# Any unicode a JSON or form body can carry (NUL and control characters included).
any_text = st.text(max_size=300)
long_text = st.text(min_size=100, max_size=6000)
odd_phone = st.one_of(
    st.from_regex(r"\A(whatsapp:)?\+?[0-9 ()\-.]{0,40}\Z"),
    st.from_regex(r"\A[0-9]{1,30}(:[0-9]{1,3})?@(s\.whatsapp\.net|lid|c\.us|g\.us)\Z"),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    any_text,
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False), any_text,
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
content_types = st.one_of(
    st.sampled_from([
        "", "text/plain", "application/xml", "multipart/form-data; boundary=x", "application/octet-stream",
        "application/json", "application/x-www-form-urlencoded", "application/json; charset=latin-1",
        "application/x-www-form-urlencoded; charset=utf-16", "APPLICATION/JSON", "application/jsonx",
    ]),
    header_text,
)


class Probe:
    """Posts requests the way a WSGI server would hand them to Django, and reads the real
    broker. A crash in a view comes back as a 500 response, not as an exception."""

    def __init__(self, broker, capture_on_commit):
        self.client = Client(raise_request_exception=False)
        self.broker = broker
        self.capture = capture_on_commit
        self.statuses: Counter[int] = Counter()

    def queued(self) -> int:
        return sum(self.broker.llen(q) for q in QUEUES)

    def post(self, path: str, body: bytes, content_type: str, **meta):
        # on_commit callbacks run as they would after a real commit, so anything the view
        # wrongly scheduled reaches the broker and is counted.
        with self.capture(execute=True):
            # CONTENT_TYPE set even for an empty body, as a real client sends it.
            response = self.client.generic("POST", path, body, **{"CONTENT_TYPE": content_type, **meta})
        self.statuses[response.status_code] += 1
        assert response.status_code < 500, (response.status_code, path, body[:300], meta)
        return response

    def assert_refused(self, response) -> None:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
        assert Message.objects.filter(direction="in").count() == 0
        assert self.queued() == 0


@pytest.fixture(autouse=True)
def _quiet_refusals():
    """Thousands of refusals are logged at WARNING; keep only errors (a 500's traceback)."""
    loggers = [logging.getLogger(name) for name in ("django.request", "whatsapp.webhooks", "whatsapp.inbound",
                                                    "whatsapp.inbound.receipts")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture
def probe(tenant, redis_server, django_capture_on_commit_callbacks):
    return Probe(redis_server.client(), django_capture_on_commit_callbacks)


@pytest.fixture
def outbound(tenant):
    """A reply already sent through each provider, so status callbacks can find one."""
    contact = Contact.objects.create(tenant=tenant, phone="+15551230000")
    made = {}
    for provider, sid in ((Provider.TWILIO, "SMfuzz0001"), (Provider.BAILEYS, "3EBFUZZ0001")):
        message = Message.objects.new_outbound(tenant=tenant, contact=contact, body="hi")
        Message.objects.filter(pk=message.pk).update(status=Status.SENT, provider=provider, provider_message_id=sid)
        made[provider] = sid
    return made


# --- Twilio ---------------------------------------------------------------------------

def form_body(form: dict) -> bytes:
    return urlencode(form, doseq=True).encode("latin-1") if form else b""


twilio_fields = st.dictionaries(
    st.one_of(st.sampled_from(["Body", "From", "MessageSid", "NumMedia", "MessageStatus", "ErrorCode"]), any_text),
    st.one_of(any_text, st.binary(max_size=50)), max_size=8,
)


def form_signature(url: str, body: bytes, token: str | None = None) -> str:
    """Twilio's signature of what Django reads from the body (bytes that are not UTF-8
    become U+FFFD in request.POST)."""
    return twilio_signature(url, QueryDict(body, encoding="utf-8"), token=token)


@st.composite
def missigned_twilio(draw):
    """A form Twilio did not sign: no signature, garbage, someone else's token, another URL,
    or a correct signature for a body that was then changed."""
    form = {**twilio_form(), **draw(twilio_fields)} if draw(st.booleans()) else draw(twilio_fields)
    body = form_body(form)
    path = draw(st.sampled_from(TWILIO_PATHS))
    url = f"http://testserver{path}"
    kind = draw(st.sampled_from(["missing", "garbage", "wrong_token", "wrong_url", "tampered"]))
    if kind == "missing":
        return path, body, None
    if kind == "garbage":
        return path, body, draw(header_text)
    if kind == "wrong_token":
        return path, body, form_signature(url, body, token=draw(st.text(min_size=1, max_size=40)) + "x")
    if kind == "wrong_url":
        other = draw(st.sampled_from(["https://testserver", "http://evil.example", "http://testserver:8080"]))
        return path, body, form_signature(other + path, body)
    signature = form_signature(url, body)
    key = draw(st.sampled_from(["Body", "From", "MessageSid", "MessageStatus", "Extra"]))
    tampered = {**form, key: str(form.get(key, "")) + draw(st.text(min_size=1, max_size=20))}
    return path, form_body(tampered), signature


@given(case=missigned_twilio())
@FUZZ
def _missigned_twilio_forms(probe, case):
    path, body, signature = case
    meta = {} if signature is None else {"HTTP_X_TWILIO_SIGNATURE": signature}
    probe.assert_refused(probe.post(path, body, "application/x-www-form-urlencoded", **meta))


def test_twilio_forms_without_a_valid_signature_are_refused_and_nothing_is_stored(probe, outbound):
    _missigned_twilio_forms(probe)
    assert probe.statuses[403] > EXAMPLES // 2


# Other tenants' URLs: any slug, percent-encoded as a client would send it ("%00" included).
unknown_tenant_paths = st.builds(
    lambda provider, slug, status: f"/webhooks/{provider}/{quote(slug, safe='')}/" + ("status/" if status else ""),
    st.sampled_from(["twilio", "baileys"]), st.text(min_size=1, max_size=40).filter(lambda s: s != "acme"),
    st.booleans(),
)


@given(
    path=st.one_of(st.sampled_from(TWILIO_PATHS + BAILEYS_PATHS), unknown_tenant_paths),
    body=st.one_of(st.binary(max_size=2000), st.binary(max_size=200).map(lambda b: b"Body=%FF%FE&From=" + b)),
    content_type=content_types,
    signature=st.one_of(st.none(), header_text),
    content_length=st.one_of(st.none(), header_text.filter(lambda s: not (s.isascii() and s.isdigit()))),
)
@FUZZ
def _garbage_to_any_webhook(probe, path, body, content_type, signature, content_length):
    meta = {}
    if signature is not None:
        meta["HTTP_X_TWILIO_SIGNATURE"] = signature
    if content_length is not None:
        meta["CONTENT_LENGTH"] = content_length
    probe.assert_refused(probe.post(path, body, content_type, **meta))


def test_arbitrary_bytes_headers_content_types_and_tenants_are_refused_by_every_webhook(probe):
    _garbage_to_any_webhook(probe)


@given(path=st.sampled_from(TWILIO_PATHS), extra=st.integers(min_value=1, max_value=300_000), tail=any_text)
@FUZZ
def _oversized_twilio(probe, path, extra, tail):
    form = twilio_form(Body=tail + "x" * (django_settings.WEBHOOK_MAX_BYTES + extra))
    response = probe.post(
        path, form_body(form), "application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(f"http://testserver{path}", form),
    )
    assert response.status_code == 413
    probe.assert_refused(response)


def test_oversized_but_correctly_signed_twilio_forms_are_refused_as_too_large(probe):
    _oversized_twilio(probe)


@st.composite
def signed_twilio_inbound(draw):
    """Twilio's real fields, signed with the right token, with odd values: any unicode,
    odd phone numbers, long ids, raw (non-UTF-8) bytes that Django decodes with U+FFFD."""
    fields = draw(st.fixed_dictionaries({}, optional={
        "Body": st.one_of(any_text, long_text),
        "From": odd_phone,
        "MessageSid": st.one_of(st.text(min_size=1, max_size=20), long_text),
        "ProfileName": st.one_of(any_text, long_text),
        "NumMedia": st.one_of(st.integers(-5, 10**30).map(str), any_text),
        "MediaContentType0": any_text,
        "Latitude": any_text,
        "WaId": odd_phone,
    }))
    form = twilio_form(**fields)
    raw = draw(st.dictionaries(st.sampled_from(["Body", "ProfileName", "From", "MessageSid"]), st.binary(max_size=40)))
    return {**form, **raw}


@given(form=signed_twilio_inbound())
@FUZZ
def _signed_twilio_inbound(probe, form):
    path = TWILIO_PATHS[0]
    body = form_body(form)
    # Sign what Django will read: bytes that are not UTF-8 become U+FFFD in request.POST.
    parsed = QueryDict(body, encoding="utf-8")
    messages, queued = Message.objects.count(), probe.queued()
    response = probe.post(
        path, body, "application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(f"http://testserver{path}", parsed),
    )
    stored = Message.objects.count() - messages
    if response.status_code == 200:
        # Stored under its id, less any NUL (PostgreSQL text cannot hold one).
        sid = parsed["MessageSid"].replace("\x00", "")
        assert Message.objects.filter(provider="twilio", provider_message_id=sid).count() == 1
    else:
        assert stored == 0
    # One reply task for each message stored, none for a duplicate or a refusal.
    assert probe.queued() - queued == stored


def test_correctly_signed_twilio_messages_with_odd_content_are_stored_once_or_refused(probe):
    _signed_twilio_inbound(probe)
    # Both sides were exercised: many odd messages stored, many refused.
    assert probe.statuses[200] > EXAMPLES // 10 and probe.statuses[400] > EXAMPLES // 10, probe.statuses


@given(
    fields=st.fixed_dictionaries({}, optional={
        "MessageSid": st.one_of(st.just("SMfuzz0001"), any_text, long_text),
        "MessageStatus": st.one_of(st.sampled_from(["sent", "delivered", "read", "failed", "undelivered"]), any_text),
        "ErrorCode": st.one_of(st.integers(-(10**30), 10**30).map(str), any_text),
    }),
    key=st.one_of(st.none(), any_text),
)
@FUZZ
def _signed_twilio_status(probe, fields, key):
    path = TWILIO_PATHS[1] + ("" if key is None else "?key=" + quote(key, safe=""))
    body = form_body({"AccountSid": django_settings.TWILIO_ACCOUNT_SID, **fields})
    parsed = QueryDict(body, encoding="utf-8")
    response = probe.post(
        path, body, "application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(f"http://testserver{path}", parsed),
    )
    assert response.status_code in (200, 400), response.content[:300]
    assert probe.queued() == 0


def test_correctly_signed_twilio_status_callbacks_with_odd_content_never_fail(probe, outbound):
    _signed_twilio_status(probe)


# --- Baileys sidecar ------------------------------------------------------------------

def sidecar_meta(timestamp: str | None, signature: str | None) -> dict:
    meta = {}
    if timestamp is not None:
        meta["HTTP_X_SIDECAR_TIMESTAMP"] = timestamp
    if signature is not None:
        meta["HTTP_X_SIDECAR_SIGNATURE"] = signature
    return meta


def signed(body: bytes, timestamp: str | None = None) -> dict:
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    return sidecar_meta(timestamp, sidecar_signature(django_settings.SIDECAR_WEBHOOK_SECRET, timestamp, body))


def a_message(**fields) -> dict:
    return {"id": "3A" + str(time.monotonic_ns()), "from": "15551234567", "fromJid": "15551234567@s.whatsapp.net",
            "pushName": "Dana", "type": "text", "text": "hello", **fields}


sidecar_bodies = st.one_of(
    st.builds(lambda extra: json.dumps(a_message(**extra)).encode(), st.dictionaries(any_text, json_values, max_size=3)),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=500),
)


@st.composite
def missigned_sidecar(draw):
    """Not signed by the sidecar, or signed too long ago: missing headers, timestamps that
    are not unix times (words, huge numbers, unicode digits), stale or future ones even
    with a matching signature, another secret, another body, a bare hex digest."""
    body = draw(sidecar_bodies)
    now = int(time.time())
    max_age = django_settings.SIDECAR_WEBHOOK_MAX_AGE
    kind = draw(st.sampled_from(["missing", "bad_timestamp", "stale", "wrong_secret", "other_body", "bare_hex",
                                 "garbage"]))
    if kind == "missing":
        ts, sig = draw(st.sampled_from([(None, None), ("now", None), (None, "sig"), ("", ""), ("now", "")]))
        ts = str(now) if ts == "now" else ts
        sig = signed(body, ts)["HTTP_X_SIDECAR_SIGNATURE"] if sig == "sig" and ts else sig
        return body, sidecar_meta(ts, sig)
    if kind == "bad_timestamp":
        ts = draw(st.one_of(
            header_text.filter(lambda s: not s.strip().lstrip("+-").isdigit()),
            st.integers(min_value=10**20, max_value=10**400).map(str),
            st.integers(min_value=10**20, max_value=10**400).map(lambda n: f"-{n}"),
            st.just("١٧٠٠٠٠٠٠٠٠"), st.just(f"{now}.5"), st.just(f"{now:e}"), st.just("1e999"),
        ))
        return body, signed(body, ts)
    if kind == "stale":
        offset = draw(st.integers(min_value=max_age + 5, max_value=10**9))
        return body, signed(body, str(now - offset if draw(st.booleans()) else now + offset))
    if kind == "wrong_secret":
        secret = draw(st.text(min_size=1, max_size=40)) + "!"
        return body, sidecar_meta(str(now), sidecar_signature(secret, str(now), body))
    if kind == "other_body":
        other = draw(sidecar_bodies.filter(lambda b: b != body))
        return body, signed(other, str(now))
    if kind == "bare_hex":
        sig = signed(body, str(now))["HTTP_X_SIDECAR_SIGNATURE"]
        return body, sidecar_meta(str(now), draw(st.sampled_from([sig[7:], sig.upper(), sig + " ", " " + sig])))
    return body, sidecar_meta(draw(st.one_of(st.just(str(now)), header_text)), draw(header_text))


@given(path=st.sampled_from(BAILEYS_PATHS), case=missigned_sidecar())
@FUZZ
def _missigned_sidecar(probe, path, case):
    body, meta = case
    probe.assert_refused(probe.post(path, body, "application/json", **meta))


def test_sidecar_requests_without_a_fresh_valid_signature_are_refused_and_nothing_is_stored(probe, outbound):
    _missigned_sidecar(probe)
    assert probe.statuses[403] > EXAMPLES // 2, probe.statuses


def nested(depth: int, kind: str) -> bytes:
    opener, closer = {"list": ("[", "]"), "object": ('{"a":', "}")}[kind]
    return (opener * depth + "1" + closer * depth).encode()


signed_garbage = st.one_of(
    st.binary(max_size=500).filter(lambda b: not b.strip().startswith(b"{")),
    st.binary(min_size=1, max_size=300).map(lambda b: b"\xff\xfe" + b),  # not UTF-8
    st.builds(lambda v: json.dumps(a_message(text=v)).encode("utf-16"), any_text),  # mis-encoded
    st.builds(lambda v: json.dumps(a_message(text=v), ensure_ascii=False).encode("latin-1", "replace")[:-1], any_text),
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),  # not an object
    st.builds(nested, st.integers(min_value=500, max_value=10_000), st.sampled_from(["list", "object"])),
    st.integers(min_value=4301, max_value=20_000).map(lambda n: b'{"id": ' + b"9" * n + b"}"),  # huge int
    st.sampled_from([b" ", b"{", b"NaN", b'{"id": NaN}', b"1e999999", b'{"a": 1e999999}', b"\x00", b"null"]),
    st.builds(lambda m: json.dumps(m).encode(), st.fixed_dictionaries({  # required fields missing or empty
        "id": st.sampled_from([None, ""]), "from": st.sampled_from(["15551234567"]), "text": any_text,
    })),
)


@given(path=st.sampled_from(BAILEYS_PATHS), body=signed_garbage)
@FUZZ
def _signed_garbage_to_sidecar_hook(probe, path, body):
    response = probe.post(path, body, "application/json", **signed(body))
    assert response.status_code == 400, (response.status_code, body[:200], response.content[:300])
    probe.assert_refused(response)


def test_signed_bodies_that_are_not_json_objects_are_refused_with_400_and_nothing_is_stored(probe, outbound):
    _signed_garbage_to_sidecar_hook(probe)


@given(
    path=st.sampled_from(BAILEYS_PATHS),
    size=st.integers(min_value=1, max_value=300_000),
    content_type=content_types.filter(lambda c: c.split(";")[0].strip().lower() != "application/json"),
)
@FUZZ
def _oversized_or_wrong_type_sidecar(probe, path, size, content_type):
    big = json.dumps(a_message(text="x" * (django_settings.SIDECAR_WEBHOOK_MAX_BYTES + size))).encode()
    small = json.dumps(a_message()).encode()
    # Correctly signed, but too large (as JSON), or of the wrong content type.
    too_large = probe.post(path, big, "application/json", **signed(big))
    assert too_large.status_code == 413
    probe.assert_refused(too_large)
    wrong_type = probe.post(path, small, content_type, **signed(small))
    assert wrong_type.status_code == 415
    probe.assert_refused(wrong_type)


def test_oversized_or_non_json_sidecar_requests_are_refused_even_when_signed(probe):
    _oversized_or_wrong_type_sidecar(probe)


@st.composite
def signed_sidecar_message(draw):
    """What the sidecar could send, signed: any unicode, odd numbers and JIDs, values of
    the wrong JSON type, unknown message types, extra nested fields."""
    field = st.one_of(json_scalars, long_text, json_values)
    message = a_message()
    message.update(draw(st.fixed_dictionaries({}, optional={
        "id": st.one_of(st.text(min_size=1, max_size=40), long_text, json_scalars),
        "from": st.one_of(odd_phone, st.none(), json_scalars),
        "fromJid": st.one_of(odd_phone, st.none(), field),
        "fromAltJid": st.one_of(odd_phone, st.none(), field),
        "pushName": field,
        "type": st.one_of(st.sampled_from(["text", "image", "sticker", "reaction", "poll"]), field),
        "text": st.one_of(any_text, long_text, field),
        "timestamp": field,
    })))
    message.update(draw(st.dictionaries(any_text, json_values, max_size=3)))
    return message


@given(message=signed_sidecar_message(), ensure_ascii=st.booleans())
@FUZZ
def _signed_sidecar_inbound(probe, message, ensure_ascii):
    body = json.dumps(message, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    messages, queued = Message.objects.count(), probe.queued()
    response = probe.post(BAILEYS_PATHS[0], body, "application/json", **signed(body))
    stored = Message.objects.count() - messages
    if response.status_code != 200:
        assert stored == 0
    assert probe.queued() - queued == stored


def test_correctly_signed_sidecar_messages_with_odd_content_are_stored_once_or_refused(probe):
    _signed_sidecar_inbound(probe)
    assert probe.statuses[200] > EXAMPLES // 10 and probe.statuses[400] > EXAMPLES // 10, probe.statuses


@given(
    fields=st.fixed_dictionaries({}, optional={
        "messageId": st.one_of(st.just("3EBFUZZ0001"), any_text, long_text, json_values),
        "status": st.one_of(st.sampled_from(["sent", "delivered", "read", "failed"]), any_text, json_values),
        "idempotencyKey": st.one_of(any_text, json_values),
    }),
)
@FUZZ
def _signed_sidecar_status(probe, fields):
    body = json.dumps(fields).encode()
    response = probe.post(BAILEYS_PATHS[1], body, "application/json", **signed(body))
    assert response.status_code in (200, 400), response.content[:300]
    assert probe.queued() == 0


def test_correctly_signed_sidecar_acks_with_odd_content_never_fail(probe, outbound):
    _signed_sidecar_status(probe)
