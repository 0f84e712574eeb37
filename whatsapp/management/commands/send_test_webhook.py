"""Post an inbound message to a running server, signed exactly as Twilio signs it, and
follow it through the pipeline: the reply that answers it (found by its link to the
message, Message.in_reply_to, never by time), through which provider it went, or why
there is none."""

from __future__ import annotations

import time
import uuid

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from twilio.request_validator import RequestValidator

from bots.dispatch import debounce_seconds
from whatsapp.models import DeadLetter, Direction, Message, Provider, Status, Tenant
from whatsapp.replies import answering_reply

PROVIDER_NAMES = {Provider.TWILIO: "Twilio", Provider.BAILEYS: "the WhatsApp Web session"}
ACCEPTED = {Status.SENT, Status.DELIVERED, Status.READ}


class Command(BaseCommand):
    help = "Send a signed Twilio inbound webhook to a running server and show the reply it gets."

    def add_arguments(self, parser):
        parser.add_argument("tenant")
        parser.add_argument("--body", default="Hello!")
        parser.add_argument("--from", dest="from_number", default="+15551234567")
        parser.add_argument("--server", default="http://127.0.0.1:8000")
        parser.add_argument("--message-sid", default="", help="Re-use a MessageSid to simulate a re-delivery")
        parser.add_argument("--wait", type=float, default=10.0, help="Seconds to wait for the reply")

    def handle(self, *args, **opts):
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant {opts['tenant']!r}; create it with manage.py create_tenant")
        sid = opts["message_sid"] or "SM" + uuid.uuid4().hex
        already_stored = stored_inbound(sid) is not None
        self._post(tenant, sid, opts)
        if already_stored:
            self.stdout.write(self.style.SUCCESS(
                "duplicate ignored, as expected: this MessageSid was already stored, so it gets no second reply"))
        if opts["wait"] > 0:
            self._follow(tenant, sid, opts["wait"], opts["server"].rstrip("/"), already_stored)

    def _post(self, tenant: Tenant, sid: str, opts: dict) -> None:
        path = f"/webhooks/twilio/{tenant.slug}/"
        server = opts["server"].rstrip("/")
        form = {
            "MessageSid": sid, "SmsMessageSid": sid, "AccountSid": settings.TWILIO_ACCOUNT_SID,
            "From": f"whatsapp:{opts['from_number']}", "To": f"whatsapp:{tenant.twilio_number}",
            "Body": opts["body"], "NumMedia": "0", "ProfileName": "Test Customer",
            "WaId": opts["from_number"].lstrip("+"),
        }
        signed_url = (settings.PUBLIC_BASE_URL or server) + path
        signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(signed_url, form)
        started = time.monotonic()
        try:
            response = requests.post(server + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)
        except requests.RequestException as exc:
            raise CommandError(f"could not reach {server}: {exc}") from exc
        self.stdout.write(f"webhook answered {response.status_code} in {(time.monotonic() - started) * 1000:.0f} ms "
                          f"(MessageSid {sid})")
        if response.status_code != 200:
            raise CommandError(response.text)

    def _follow(self, tenant: Tenant, sid: str, wait: float, server: str, duplicate: bool) -> None:
        deadline = time.monotonic() + wait
        inbound = reply = None
        while time.monotonic() < deadline:
            inbound = stored_inbound(sid)
            reply = answering_reply(inbound) if inbound else None
            if reply is not None and reply.status not in (Status.QUEUED, Status.SENDING):
                break
            time.sleep(0.1)
        if inbound is None:
            self.stdout.write(self.style.WARNING(
                f"the server answered, but this database has no message {sid}: does {server} use another database?"))
        elif reply is None:
            self.stdout.write(self.style.WARNING(
                f"no reply within {wait:g} s: the message still waits for an answer (status {inbound.status}). "
                "Is the ai worker running? (`make run` starts it)"))
        else:
            self._report(tenant, inbound, reply, server, duplicate)

    def _report(self, tenant: Tenant, inbound: Message, reply: Message, server: str, duplicate: bool) -> None:
        merged = reply.in_reply_to_id != inbound.pk
        what = "reply (one for this message and the later ones of its burst)" if merged else "reply"
        if duplicate:
            what = f"its one {what}, to the first delivery,"
        if reply.status in ACCEPTED or reply.status in (Status.FAILED, Status.UNDELIVERED):
            after = (reply.sent_at - inbound.created_at).total_seconds()
            line = (f"{what} sent through {PROVIDER_NAMES.get(reply.provider, reply.provider)} "
                    f"{after:.1f} s after the message arrived{self._debounce_note(tenant)}: {reply.body!r}")
            if reply.status in ACCEPTED:
                self.stdout.write(self.style.SUCCESS(line))
            else:
                self.stdout.write(self.style.WARNING(
                    f"{line}, then reported {reply.status} by the provider ({reply.error_code or reply.last_error})"))
        elif reply.status == Status.DEAD:
            letter = DeadLetter.objects.filter(message=reply, resolved_at__isnull=True).first()
            where = server + reverse("admin:whatsapp_deadletter_change", args=[letter.pk]) if letter else ""
            reason = f"{letter.get_reason_display()}: {letter.last_error}" if letter else reply.last_error
            self.stdout.write(self.style.WARNING(
                f"{what} became a dead letter ({reason}); staff requeue or discard it at {where}"))
        elif reply.status == Status.DISCARDED:
            self.stdout.write(self.style.WARNING(f"{what} was discarded by staff from the dead letters"))
        else:
            self.stdout.write(self.style.WARNING(
                f"{what} stored but not sent yet (status {reply.status}, {reply.attempt_count} attempt(s)"
                f"{', last error: ' + reply.last_error if reply.last_error else ''}); the send worker keeps trying"))

    @staticmethod
    def _debounce_note(tenant: Tenant) -> str:
        wait = debounce_seconds(tenant)
        return f" ({wait:g} s of it is the debounce: the bot waits that long in case the customer writes again)" \
            if wait else ""


def stored_inbound(sid: str) -> Message | None:
    return Message.objects.filter(
        direction=Direction.INBOUND, provider=Provider.TWILIO, provider_message_id=sid
    ).select_related("tenant", "contact").first()
