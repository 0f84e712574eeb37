"""A local stand-in for Twilio's REST API that speaks its wire format, so the real twilio
client can be pointed at it (TWILIO_API_BASE_URL). It records what was "sent" (what the
customer would receive) and injects faults on request.

Run alone (for `make run`): python -m tests.fakes.twilio_server --port 8010
Control over HTTP: GET /_fake/messages, POST /_fake/faults {...}, POST /_fake/reset.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import parse_qs, urlparse

from tests.fakes.base import FakeServer, JsonHandler


@dataclass
class Faults:
    """What the next requests do. Counters count down per Messages.json POST."""

    # (http status, twilio code) per request; None answers that request normally
    errors: list[tuple[int, int] | None] = field(default_factory=list)
    hang_next: int = 0  # accept the connection, never answer (until hang_seconds)
    accept_then_hang_next: int = 0  # record the message, then never answer
    hang_all: bool = False
    hang_seconds: float = 30.0
    invalid_numbers: set[str] = field(default_factory=set)  # E.164 numbers that get 21211
    window_closed: set[str] = field(default_factory=set)  # numbers that get 63016 for free-form text
    delay_seconds: float = 0.0
    error_rate: float = 0.0  # share of sends answered 503 (chaos runs)
    hang_rate: float = 0.0  # share of sends that hang until hang_seconds (chaos runs)


class FakeTwilio(FakeServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, account_sid: str = "AC" + "0" * 32,
                 auth_token: str = "dev-twilio-auth-token"):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict] = []
        self.requests = 0
        self.faults = Faults()
        super().__init__(host, port)

    @property
    def base_url(self) -> str:
        return self.address

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.requests = 0
            self.faults = Faults()

    def sent_to(self, phone: str) -> list[dict]:
        with self.lock:
            return [m for m in self.messages if m["to"] == f"whatsapp:{phone}"]

    def _decide(self, form: dict) -> tuple[str, object]:
        """What to do with one Messages.json POST: ("ok"|"error"|"hang"|"accept_then_hang", detail)."""
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
            if to in f.window_closed and "ContentSid" not in form:
                return "error", (400, 63016)
            if f.accept_then_hang_next > 0:
                f.accept_then_hang_next -= 1
                return "accept_then_hang", None
            return "ok", None

    def _record(self, form: dict) -> dict:
        now = datetime.now(UTC)
        resource = {
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": self.account_sid,
            "to": form.get("To", ""),
            "from": form.get("From", ""),
            "body": form.get("Body", ""),
            "content_sid": form.get("ContentSid"),
            "content_variables": form.get("ContentVariables"),
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "num_media": "0",
            "price": None,
            "price_unit": "USD",
            "api_version": "2010-04-01",
            "error_code": None,
            "error_message": None,
            "date_created": format_datetime(now),
            "date_updated": format_datetime(now),
            "date_sent": None,
            "messaging_service_sid": None,
            "status_callback": form.get("StatusCallback"),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/x.json",
            "subresource_uris": {},
            "_received_at": time.time(),
        }
        resource["uri"] = resource["uri"].replace("x.json", resource["sid"] + ".json")
        with self.lock:
            self.messages.append(resource)
        return resource

    def handler_class(self):
        fake = self

        class Handler(JsonHandler):
            _send = JsonHandler.send_json

            def _authorized(self) -> bool:
                expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
                return self.headers.get("Authorization", "") == f"Basic {expected}"

            def _messages_path(self) -> bool:
                return urlparse(self.path).path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"

            def do_GET(self):
                parsed = urlparse(self.path)
                if parsed.path == "/_fake/messages":
                    with fake.lock:
                        return self._send(200, {"messages": list(fake.messages), "requests": fake.requests})
                if not self._messages_path():
                    return self._send(404, {"code": 20404, "message": "not found", "status": 404})
                if not self._authorized():
                    return self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
                if fake.faults.hang_all:
                    time.sleep(fake.faults.hang_seconds)
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                with fake.lock:
                    found = [
                        m for m in fake.messages
                        if m["to"] == query.get("To", m["to"]) and m["from"] == query.get("From", m["from"])
                    ]
                return self._send(200, {
                    "messages": list(reversed(found)), "page": 0, "page_size": 50, "start": 0, "end": len(found),
                    "first_page_uri": parsed.path, "next_page_uri": None, "previous_page_uri": None,
                    "uri": self.path,
                })

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
                            if key in {"invalid_numbers", "window_closed"}:
                                value = set(value)
                            if key == "errors":
                                value = [tuple(e) if e is not None else None for e in value]
                            setattr(fake.faults, key, value)
                    return self._send(200, {"ok": True})
                if not self._messages_path():
                    return self._send(404, {"code": 20404, "message": "not found", "status": 404})
                if not self._authorized():
                    return self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                if not form.get("To") or not form.get("From") or not (form.get("Body") or form.get("ContentSid")):
                    return self._send(400, {"code": 21602, "message": "Message body is required.", "status": 400})
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
                resource = fake._record(form)
                if action == "accept_then_hang":
                    time.sleep(fake.faults.hang_seconds)
                public = {k: v for k, v in resource.items() if not k.startswith("_")}
                return self._send(201, public)

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
    fake.server.serve_forever()


if __name__ == "__main__":
    main()
