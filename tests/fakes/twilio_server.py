"""A local stand-in for Twilio's REST API that speaks its wire format, so the real twilio
client can be pointed at it (TWILIO_API_BASE_URL). It records what was "sent" (what the
customer would receive), behaves as Twilio documents where our code depends on it, and
injects faults on request.

What it models, with the documentation it follows:
- Message resource and its lifecycle: a created message is `queued`, later `sent`
  (then `date_sent` is set), then `delivered`, or `failed`/`undelivered` with an
  ErrorCode; while queued its `date_sent` is null.
  https://www.twilio.com/docs/messaging/api/message-resource#message-status-values
- The Messages list: `To`, `From`, `DateSent`, `DateSent<`, `DateSent>` filters. DateSent
  is a GMT *date* ("YYYY-MM-DD"; `DateSent>=` means on or after midnight of that date), so
  the time of day the twilio client sends is ignored, and a message without a date_sent
  (still queued) never matches a DateSent filter. Newest first, paged: PageSize (default
  50, at most 1000), the next page is reached only through `next_page_uri`, which
  carries a PageToken ("Page" is client state only).
  https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources
  https://www.twilio.com/docs/usage/twilios-response#pagination
- Single-message fetch: GET /Messages/{Sid}.json (20404 when unknown).
- Status callbacks: a form POST to the StatusCallback URL for every status change, with
  MessageSid, MessageStatus, ErrorCode (failures), signed with the account's auth token
  in X-Twilio-Signature (HMAC-SHA1 over the URL + the sorted POST parameters).
  https://www.twilio.com/docs/messaging/guides/track-outbound-message-status
  https://www.twilio.com/docs/usage/webhooks/webhooks-security
- Inbound media (MediaUrlN of an inbound webhook): the URL is the Media resource,
  `/2010-04-01/Accounts/{sid}/Messages/{MM}/Media/{ME}`, protected by HTTP basic auth
  with the account SID and auth token (the default for new accounts: 401/20003 without
  it); with it, Twilio answers a redirect (307) to a short-lived signed storage URL on
  another host, which serves the bytes with their Content-Type and Content-Length and
  refuses an expired signature (403) and a request that also carries an Authorization
  header (400, as S3 refuses two authentication mechanisms). Deleted media is 404/20404.
  https://www.twilio.com/docs/usage/security#http-authentication
  https://www.twilio.com/docs/messaging/api/media-resource
  https://www.twilio.com/docs/messaging/guides/webhook-request (NumMedia, MediaUrl0...)
- Outbound media: `MediaUrl`, a form field repeated once per file (at most 10); with it,
  Body may be left out. Twilio accepts the message (201, queued, num_media) and then
  fetches every URL itself, without credentials, following redirects; a URL it cannot
  fetch (unreachable, 4xx/5xx, e.g. an expired signed URL) fails the message with 11200
  "HTTP retrieval failure", a Content-Type it does not accept for WhatsApp with 12300
  "Invalid Content-Type", more than the size limit (16 MB per message, 5 MB for an image)
  too; the failure comes as the status callback (failed + ErrorCode), never as the
  answer to the create request. The fetched bytes are kept (`fetched_media`) so a test can
  compare what the customer received.
  https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource (MediaUrl)
  https://www.twilio.com/docs/whatsapp/guidance-whatsapp-media-messages (types and size limits)
  https://www.twilio.com/docs/api/errors/11200 (HTTP retrieval failure)
- The Message resource does not return the StatusCallback URL or the ContentSid: a
  client cannot find its own key in a listed message (we keep both privately).

Run alone (for `make run`): python -m tests.fakes.twilio_server --port 8010
Control over HTTP: GET /_fake/messages (or /_fake/count), POST /_fake/faults {...}, POST /_fake/reset.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import random
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs, urlencode, urlparse

import requests
from twilio.request_validator import RequestValidator

from tests.fakes.base import FakeServer, JsonHandler

MAX_PAGE_SIZE = 1000  # Twilio's documented maximum
DEFAULT_PAGE_SIZE = 50
# Kept on the stored message but not part of Twilio's Message resource.
PRIVATE_FIELDS = {"content_sid", "content_variables", "status_callback", "posted_body", "media_urls",
                  "fetched_media"}
MAX_MEDIA = 10
# What Twilio accepts as WhatsApp media (guidance-whatsapp-media-messages), and its limits.
WHATSAPP_MEDIA_TYPES = {"image/jpeg", "image/png", "image/webp", "audio/ogg", "audio/amr", "audio/3gpp", "audio/aac",
                        "audio/mpeg", "video/mp4", "application/pdf", "application/msword", "text/vcard",
                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
MESSAGE_MEDIA_LIMIT = 16 * 1024 * 1024
IMAGE_LIMIT = 5 * 1024 * 1024


@dataclass
class Faults:
    """What the next requests do. Counters count down per Messages.json POST."""

    # (http status, twilio code) per request; None answers that request normally
    errors: list[tuple[int, int] | None] = field(default_factory=list)
    hang_next: int = 0  # accept the connection, never answer (until hang_seconds)
    accept_then_hang_next: int = 0  # store the message, then never answer (the answer is lost)
    hang_all: bool = False
    hang_seconds: float = 30.0
    invalid_numbers: set[str] = field(default_factory=set)  # E.164 numbers that get 21211
    # E.164 numbers that replied STOP to the sender: 21610 "Attempt to send to unsubscribed
    # recipient" (https://www.twilio.com/docs/api/errors/21610), for text and templates alike.
    unsubscribed: set[str] = field(default_factory=set)
    window_closed: set[str] = field(default_factory=set)  # numbers that get 63016 for free-form text
    delay_seconds: float = 0.0
    error_rate: float = 0.0  # share of sends answered 503 (chaos runs)
    hang_rate: float = 0.0  # share of sends that hang until hang_seconds (chaos runs)
    accept_then_hang_rate: float = 0.0  # share of sends stored, then never answered (chaos runs)
    # Lifecycle after acceptance.
    queued_seconds: float = 0.0  # how long a created message stays queued (date_sent null)
    callback_delay_seconds: float = 0.0  # each status callback is posted this long after its change
    # E.164 number -> [final status, error code], e.g. {"+1555...": ["undelivered", 63024]}
    receipt_failures: dict[str, list] = field(default_factory=dict)
    clock_skew_seconds: float = 0.0  # Twilio's clock minus ours (date_created, date_sent)
    # Inbound media: how many next redirects point to an already expired storage URL
    # (-1: all of them), and how many next downloads fail with 500 at the storage host.
    media_expired_next: int = 0
    media_errors_next: int = 0
    media_drip_seconds: float = 0.0  # the storage host sends the body a byte at a time, this far apart


def _twilio_date(value: str) -> date | None:
    """DateSent values are GMT dates; the twilio client sends "YYYY-MM-DDTHH:MM:SSZ", of
    which Twilio uses the date."""
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


class FakeTwilio(FakeServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, account_sid: str = "AC" + "0" * 32,
                 auth_token: str = "dev-twilio-auth-token"):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict] = []
        self.callbacks: list[dict] = []  # every status callback posted: url, form, answer
        self.requests = 0
        self.injected: dict[str, int] = {}  # faults injected so far, by kind (chaos runs count them)
        self.faults = Faults()
        self.media: dict[str, dict] = {}  # ME sid -> {"data", "content_type"}
        self.media_requests: list[dict] = []  # every media request: path, had_auth, status
        super().__init__(host, port)

    # --- inbound media ---------------------------------------------------------------------

    def add_media(self, data: bytes, content_type: str) -> str:
        """Store a customer's attachment; the MediaUrl an inbound webhook would carry."""
        sid = "ME" + uuid.uuid4().hex
        with self.lock:
            self.media[sid] = {"data": data, "content_type": content_type}
        return f"{self.address}/2010-04-01/Accounts/{self.account_sid}/Messages/MM{uuid.uuid4().hex}/Media/{sid}"

    def _storage_signature(self, sid: str, expires: int) -> str:
        return hmac.new(self.auth_token.encode(), f"{sid}:{expires}".encode(), hashlib.sha256).hexdigest()

    def storage_url(self, sid: str) -> str:
        """A signed URL on another host name (localhost, not 127.0.0.1): clients drop
        their Authorization header when a redirect leaves the host."""
        with self.lock:
            expired = self.faults.media_expired_next != 0
            if self.faults.media_expired_next > 0:
                self.faults.media_expired_next -= 1
        expires = int(time.time()) + (-60 if expired else 300)
        port = self.server.server_address[1]
        return (f"http://localhost:{port}/_storage/{sid}?Expires={expires}"
                f"&Signature={self._storage_signature(sid, expires)}")

    @property
    def base_url(self) -> str:
        return self.address

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.callbacks.clear()
            self.requests = 0
            self.injected = {}
            self.faults = Faults()
            self.media.clear()
            self.media_requests.clear()

    def _count(self, kind: str) -> None:
        with self.lock:
            self.injected[kind] = self.injected.get(kind, 0) + 1

    def sent_to(self, phone: str) -> list[dict]:
        with self.lock:
            return [m for m in self.messages if m["to"] == f"whatsapp:{phone}"]

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.faults.clock_skew_seconds)

    def _decide(self, form: dict) -> tuple[str, object]:
        """What to do with one Messages.json POST: ("ok"|"error"|"hang"|"accept_then_hang", detail)."""
        action, detail = self._choose(form)
        if action != "ok":
            self._count(action)
        return action, detail

    def _choose(self, form: dict) -> tuple[str, object]:
        with self.lock:
            self.requests += 1
            f = self.faults
            to = form.get("To", "").removeprefix("whatsapp:")
            if f.hang_all or f.hang_next > 0:
                f.hang_next = max(0, f.hang_next - 1)
                return "hang", None
            if f.errors and f.errors[0] is None:
                f.errors.pop(0)  # None: this request is answered normally
            elif f.errors:
                return "error", f.errors.pop(0)
            if f.hang_rate and random.random() < f.hang_rate:
                return "hang", None
            if f.error_rate and random.random() < f.error_rate:
                return "error", (503, 20503)
            if to in f.invalid_numbers:
                return "error", (400, 21211)
            if to in f.unsubscribed:
                return "error", (400, 21610)
            if to in f.window_closed and "ContentSid" not in form:
                return "error", (400, 63016)
            if f.accept_then_hang_next > 0:
                f.accept_then_hang_next -= 1
                return "accept_then_hang", None
            if f.accept_then_hang_rate and random.random() < f.accept_then_hang_rate:
                return "accept_then_hang", None
            return "ok", None

    def _record(self, form: dict, media_urls: list[str] | None = None) -> dict:
        now = self.now()
        media_urls = media_urls or []
        body = form.get("Body", "")
        if form.get("ContentSid"):
            # Twilio fills `body` with the rendered template; this stands for it.
            body = f"[template {form['ContentSid']}] {form.get('ContentVariables') or '{}'}"
        resource = {
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": self.account_sid,
            "to": form.get("To", ""),
            "from": form.get("From", ""),
            "body": body,
            "posted_body": form.get("Body", ""),  # what the client sent as Body (empty for a template)
            "content_sid": form.get("ContentSid"),
            "content_variables": form.get("ContentVariables"),
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "num_media": str(len(media_urls)),
            "media_urls": media_urls,
            "fetched_media": [],  # what Twilio fetched: {"url", "content_type", "data"}
            "price": None,
            "price_unit": "USD",
            "api_version": "2010-04-01",
            "error_code": None,
            "error_message": None,
            "date_created": format_datetime(now, usegmt=True),
            "date_updated": format_datetime(now, usegmt=True),
            "date_sent": None,
            "messaging_service_sid": None,
            "status_callback": form.get("StatusCallback"),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/x.json",
            "subresource_uris": {},
            "_created": now,
            "_sent": None,
        }
        resource["uri"] = resource["uri"].replace("x.json", resource["sid"] + ".json")
        with self.lock:
            self.messages.append(resource)
        threading.Thread(target=self._lifecycle, args=(resource,), daemon=True).start()
        return resource

    # --- after acceptance: queued -> sent -> delivered | failed/undelivered ---------------

    def _lifecycle(self, resource: dict) -> None:
        self._callback(resource, "queued")
        time.sleep(self.faults.queued_seconds)
        media_error = self._fetch_media(resource)
        if media_error:
            self._count("media_fetch_failed")
            self._change(resource, "failed", media_error)
            return
        failure = self.faults.receipt_failures.get(resource["to"].removeprefix("whatsapp:"))
        if failure:
            self._count(f"receipt_{failure[0]}")
        if failure and failure[0] == "failed":
            # "failed": Twilio could not send it at all; it never gets a date_sent.
            self._change(resource, "failed", failure[1])
            return
        self._change(resource, "sent")
        if failure:
            self._change(resource, failure[0], failure[1])
        else:
            self._change(resource, "delivered")

    def _fetch_media(self, resource: dict) -> int | None:
        """Fetch every MediaUrl as Twilio does (no credentials, redirects followed); the
        error code that fails the message, or None."""
        total = 0
        for url in resource["media_urls"]:
            try:
                answer = requests.get(url, timeout=10, allow_redirects=True)
            except requests.RequestException:
                return 11200
            if not 200 <= answer.status_code < 300:
                return 11200
            content_type = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type not in WHATSAPP_MEDIA_TYPES:
                return 12300
            total += len(answer.content)
            if total > MESSAGE_MEDIA_LIMIT or (content_type.startswith("image/") and len(answer.content) > IMAGE_LIMIT):
                return 11200
            with self.lock:
                resource["fetched_media"].append({"url": url, "content_type": content_type, "data": answer.content})
        return None

    def _change(self, resource: dict, status: str, error_code: int | None = None) -> None:
        now = self.now()
        with self.lock:
            resource["status"] = status
            resource["date_updated"] = format_datetime(now, usegmt=True)
            if status == "sent":
                resource["_sent"] = now
                resource["date_sent"] = format_datetime(now, usegmt=True)
            if error_code:
                resource["error_code"] = int(error_code)
                resource["error_message"] = None  # Twilio leaves it null for WhatsApp errors
        self._callback(resource, status, error_code)

    def _callback(self, resource: dict, status: str, error_code: int | None = None) -> None:
        url = resource.get("status_callback")
        if not url:
            return
        form = {
            "MessageSid": resource["sid"], "SmsSid": resource["sid"], "MessageStatus": status, "SmsStatus": status,
            "AccountSid": self.account_sid, "From": resource["from"], "To": resource["to"],
            "ApiVersion": "2010-04-01", "ChannelPrefix": "whatsapp",
        }
        if error_code:
            form["ErrorCode"] = str(error_code)
        threading.Thread(target=self.post_callback, args=(url, form), daemon=True).start()

    def post_callback(self, url: str, form: dict, delay: float | None = None) -> None:
        """POST one signed status callback, as Twilio does (after the configured delay)."""
        time.sleep(self.faults.callback_delay_seconds if delay is None else delay)
        signature = RequestValidator(self.auth_token).compute_signature(url, form)
        try:
            answer = requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)
            result: object = answer.status_code
        except requests.RequestException as exc:
            result = type(exc).__name__  # Twilio gives up too; the message is unaffected
        with self.lock:
            self.callbacks.append({"url": url, "form": form, "answer": result})

    # --- reading ---------------------------------------------------------------------------

    def public(self, resource: dict) -> dict:
        return {k: v for k, v in resource.items() if not k.startswith("_") and k not in PRIVATE_FIELDS}

    def list_page(self, path: str, query: dict) -> tuple[int, dict]:
        """One page of the Messages list, filtered and paged as Twilio documents."""
        try:
            page_size = int(query.get("PageSize", DEFAULT_PAGE_SIZE))
            page = int(query.get("Page", 0))
        except ValueError:
            return 400, {"code": 20001, "message": "Invalid paging parameter", "status": 400}
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            return 400, {"code": 20001, "message": f"PageSize must be 1..{MAX_PAGE_SIZE}", "status": 400}
        date_filters = []
        for name, test in (("DateSent", date.__eq__), ("DateSent<", date.__le__), ("DateSent>", date.__ge__)):
            if name in query:
                bound = _twilio_date(query[name])
                if bound is None:
                    return 400, {"code": 20001, "message": f"Invalid {name}", "status": 400}
                date_filters.append((test, bound))
        with self.lock:
            found = [
                m for m in self.messages
                if m["to"] == query.get("To", m["to"]) and m["from"] == query.get("From", m["from"])
                and all(m["_sent"] is not None and test(m["_sent"].date(), bound) for test, bound in date_filters)
            ]
            # Newest first by date sent; a message not sent yet is the newest of all.
            found.sort(key=lambda m: (m["_sent"] is None, m["_sent"] or m["_created"], m["_created"]), reverse=True)
            found = [self.public(m) for m in found]
        start = 0
        token = query.get("PageToken", "")
        if token:
            # The token names the last message of the previous page (PA + its sid).
            sids = [m["sid"] for m in found]
            if not token.startswith("PA") or token[2:] not in sids:
                return 400, {"code": 20001, "message": "Invalid PageToken", "status": 400}
            start = sids.index(token[2:]) + 1
        items = found[start:start + page_size]
        filters = {k: v for k, v in query.items() if k not in {"Page", "PageSize", "PageToken"}}
        first = f"{path}?{urlencode({**filters, 'PageSize': page_size, 'Page': 0})}"
        next_uri = None
        if start + page_size < len(found):
            next_uri = f"{path}?{urlencode({**filters, 'PageSize': page_size, 'Page': page + 1, 'PageToken': 'PA' + items[-1]['sid']})}"
        return 200, {
            "messages": items, "page": page, "page_size": page_size, "start": start, "end": start + len(items) - 1,
            "first_page_uri": first, "next_page_uri": next_uri, "previous_page_uri": None,
            "uri": f"{path}?{urlencode(query)}",
        }

    def handler_class(self):
        fake = self

        class Handler(JsonHandler):
            _send = JsonHandler.send_json

            def _authorized(self) -> bool:
                expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
                return self.headers.get("Authorization", "") == f"Basic {expected}"

            def _messages_path(self) -> bool:
                return urlparse(self.path).path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"

            def _message_sid(self) -> str | None:
                prefix = f"/2010-04-01/Accounts/{fake.account_sid}/Messages/"
                path = urlparse(self.path).path
                if path.startswith(prefix) and path.endswith(".json"):
                    return path[len(prefix):-len(".json")]
                return None

            def _not_found(self):
                return self._send(404, {"code": 20404, "message": "The requested resource was not found",
                                        "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404})

            def _media(self, parsed):
                """The Media resource (auth, then a redirect) and the storage host."""
                def answer(status, payload=None, headers=None, raw=None):
                    with fake.lock:
                        fake.media_requests.append({"path": parsed.path, "status": status,
                                                    "had_auth": "Authorization" in self.headers})
                    return self._send(status, payload, headers, raw)

                sid = parsed.path.rsplit("/", 1)[-1]
                with fake.lock:
                    media = fake.media.get(sid)
                if parsed.path.startswith("/_storage/"):
                    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                    if "Authorization" in self.headers:
                        return answer(400, None, raw=b"<Error><Code>InvalidArgument</Code><Message>Only one auth "
                                                      b"mechanism allowed</Message></Error>")
                    expires = int(query.get("Expires", "0")) if query.get("Expires", "").isdigit() else 0
                    if media is None or not hmac.compare_digest(query.get("Signature", ""),
                                                                fake._storage_signature(sid, expires)):
                        return answer(403, None, raw=b"<Error><Code>AccessDenied</Code></Error>")
                    if expires < time.time():
                        return answer(403, None, raw=b"<Error><Code>AccessDenied</Code><Message>Request has "
                                                      b"expired</Message></Error>")
                    with fake.lock:
                        fail = fake.faults.media_errors_next > 0
                        fake.faults.media_errors_next -= 1 if fail else 0
                    if fail:
                        return answer(500, None, raw=b"<Error><Code>InternalError</Code></Error>")
                    self.send_response(200)
                    self.send_header("Content-Type", media["content_type"])
                    self.send_header("Content-Length", str(len(media["data"])))
                    self.end_headers()
                    if fake.faults.media_drip_seconds:
                        try:
                            for byte in media["data"]:
                                self.wfile.write(bytes([byte]))
                                self.wfile.flush()
                                time.sleep(fake.faults.media_drip_seconds)
                        except OSError:
                            return None  # the client gave up
                    else:
                        self.wfile.write(media["data"])
                    with fake.lock:
                        fake.media_requests.append({"path": parsed.path, "status": 200, "had_auth": False})
                    return None
                if not self._authorized():
                    return answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
                if media is None:
                    return answer(404, {"code": 20404, "message": "The requested resource was not found",
                                        "status": 404})
                return answer(307, {}, {"Location": fake.storage_url(sid)})

            def do_GET(self):
                parsed = urlparse(self.path)
                if "/Media/" in parsed.path or parsed.path.startswith("/_storage/"):
                    return self._media(parsed)
                if parsed.path == "/_fake/count":  # for a poll that must not load the fake (the bench)
                    with fake.lock:
                        return self._send(200, {"messages": len(fake.messages)})
                if parsed.path == "/_fake/messages":
                    with fake.lock:
                        return self._send(200, {"messages": [{k: v for k, v in m.items()
                                                              if not k.startswith("_") and k != "fetched_media"}
                                                             for m in fake.messages], "requests": fake.requests,
                                              "injected": dict(fake.injected)})
                sid = self._message_sid()
                if not self._messages_path() and sid is None:
                    return self._not_found()
                if not self._authorized():
                    return self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
                if fake.faults.hang_all:
                    time.sleep(fake.faults.hang_seconds)
                if sid is not None:
                    with fake.lock:
                        found = [fake.public(m) for m in fake.messages if m["sid"] == sid]
                    return self._send(200, found[0]) if found else self._not_found()
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                return self._send(*fake.list_page(parsed.path, query))

            def do_POST(self):
                parsed = urlparse(self.path)
                raw = self.read_body()
                if parsed.path == "/_fake/reset":
                    fake.reset()
                    return self._send(200, {"ok": True})
                if parsed.path == "/_fake/faults":
                    spec = json.loads(raw or b"{}")
                    with fake.lock:
                        for key, value in spec.items():
                            if key in {"invalid_numbers", "window_closed", "unsubscribed"}:
                                value = set(value)
                            if key == "errors":
                                value = [tuple(e) if e is not None else None for e in value]
                            setattr(fake.faults, key, value)
                    return self._send(200, {"ok": True})
                if not self._messages_path():
                    return self._not_found()
                if not self._authorized():
                    return self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
                fields = parse_qs(raw.decode())
                form = {k: v[0] for k, v in fields.items()}
                media_urls = fields.get("MediaUrl", [])  # repeated, one per file
                if not form.get("To") or not form.get("From") or not (
                        form.get("Body") or form.get("ContentSid") or media_urls):
                    return self._send(400, {"code": 21602, "message": "Message body is required.", "status": 400})
                if len(media_urls) > MAX_MEDIA or not all(urlparse(u).scheme in {"http", "https"} and urlparse(u).netloc
                                                          for u in media_urls):
                    return self._send(400, {"code": 21620, "message": "Invalid media URL(s)", "status": 400})
                if fake.faults.delay_seconds:
                    time.sleep(fake.faults.delay_seconds)
                action, detail = fake._decide(form)
                if action == "hang":
                    time.sleep(fake.faults.hang_seconds)
                    return self._send(503, {"code": 20503, "message": "hung", "status": 503})
                if action == "error":
                    status, code = detail
                    return self._send(status, {"code": code, "message": f"fake error {code}", "status": status,
                                               "more_info": f"https://www.twilio.com/docs/errors/{code}"})
                resource = fake._record(form, media_urls)
                if action == "accept_then_hang":
                    time.sleep(fake.faults.hang_seconds)
                return self._send(201, fake.public(resource))

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--account-sid", default="AC" + "0" * 32)
    parser.add_argument("--auth-token", default="dev-twilio-auth-token")
    args = parser.parse_args()
    fake = FakeTwilio(args.host, args.port, args.account_sid, args.auth_token)
    print(f"fake Twilio API on {fake.base_url}", flush=True)
    # Stopped by `make run` with SIGTERM: exit cleanly, without a "Terminated" line.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
