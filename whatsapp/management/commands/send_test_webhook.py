"""Post an inbound message to a running server, signed exactly as Twilio signs it,
and (in demo mode) show the reply that reached the fake Twilio API."""

from __future__ import annotations

import time
import uuid

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from twilio.request_validator import RequestValidator

from whatsapp.models import Tenant


class Command(BaseCommand):
    help = "Send a signed Twilio inbound webhook to a running server (for trying the system out)."

    def add_arguments(self, parser):
        parser.add_argument("tenant")
        parser.add_argument("--body", default="Hello!")
        parser.add_argument("--from", dest="from_number", default="+15551234567")
        parser.add_argument("--server", default="http://127.0.0.1:8000")
        parser.add_argument("--message-sid", default="", help="Re-use a MessageSid to simulate a re-delivery")
        parser.add_argument("--wait", type=float, default=5.0, help="Seconds to wait for the reply (demo mode)")
        parser.add_argument("--fake-twilio", default=settings.TWILIO_API_BASE_URL or "http://127.0.0.1:8010",
                            help="The fake Twilio API of `make run`'s demo mode, to show the reply")

    def handle(self, *args, **opts):
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant {opts['tenant']!r}; create it with manage.py create_tenant")
        path = f"/webhooks/twilio/{tenant.slug}/"
        signed_url = (settings.PUBLIC_BASE_URL or opts["server"].rstrip("/")) + path
        sid = opts["message_sid"] or "SM" + uuid.uuid4().hex
        form = {
            "MessageSid": sid, "SmsMessageSid": sid, "AccountSid": settings.TWILIO_ACCOUNT_SID,
            "From": f"whatsapp:{opts['from_number']}", "To": f"whatsapp:{tenant.twilio_number}",
            "Body": opts["body"], "NumMedia": "0", "ProfileName": "Test Customer",
            "WaId": opts["from_number"].lstrip("+"),
        }
        signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(signed_url, form)
        started = time.monotonic()
        try:
            response = requests.post(opts["server"].rstrip("/") + path, data=form,
                                     headers={"X-Twilio-Signature": signature}, timeout=10)
        except requests.RequestException as exc:
            raise CommandError(f"could not reach {opts['server']}: {exc}") from exc
        self.stdout.write(f"webhook answered {response.status_code} in {(time.monotonic() - started) * 1000:.0f} ms "
                          f"(MessageSid {sid})")
        if response.status_code != 200:
            raise CommandError(response.text)
        if opts["wait"] > 0:
            self._show_reply(opts["fake_twilio"], opts["from_number"], opts["wait"])

    def _show_reply(self, fake_url: str, phone: str, wait: float) -> None:
        sent_after = time.time() - 1
        started = time.monotonic()
        deadline = started + wait
        while time.monotonic() < deadline:
            try:
                messages = requests.get(f"{fake_url}/_fake/messages", timeout=2).json()["messages"]
            except (requests.RequestException, ValueError, KeyError):
                return  # not the fake: nothing to show
            mine = [m for m in messages if m["to"] == f"whatsapp:{phone}" and m.get("_received_at", 0) >= sent_after]
            if mine:
                self.stdout.write(self.style.SUCCESS(
                    f"reply reached Twilio after {(time.monotonic() - started):.2f} s: {mine[-1]['body']!r}"))
                return
            time.sleep(0.1)
        self.stdout.write(self.style.WARNING(f"no reply at {fake_url} within {wait} s"))
