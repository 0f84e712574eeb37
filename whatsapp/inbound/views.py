"""Webhooks. Each one: size check, tenant, content type, signature, required fields,
then store and answer. No provider or AI work here; the reply is enqueued after commit."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import IntegrityError
from django.http import HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from twilio.twiml.messaging_response import MessagingResponse

from whatsapp import metrics
from whatsapp.inbound.receipts import apply_receipt, find_outbound
from whatsapp.inbound.signatures import sidecar_signature_problem, twilio_signature_valid
from whatsapp.inbound.store import Inbound, accept_inbound
from whatsapp.inbound.tenants import cached_tenant, uncached_tenant
from whatsapp.media.sidecar_source import sidecar_attachments
from whatsapp.models import Provider, Tenant
from whatsapp.text import normalize_phone

log = logging.getLogger("whatsapp.webhooks")

MEDIA_TYPES = {"image", "audio", "video", "sticker", "location", "document", "contact"}
# E.164: at most 15 ASCII digits (normalize_phone keeps any Unicode digit; Contact.phone
# holds 20 characters).
PHONE = re.compile(r"\+[0-9]{7,15}")
# The empty TwiML answer is always the same text: built once (1% of a webhook's profile).
EMPTY_TWIML = str(MessagingResponse())


class WebhookError(Exception):
    def __init__(self, http_status: int, code: str, detail: str):
        super().__init__(detail)
        self.http_status, self.code, self.detail = http_status, code, detail


def _error(http_status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=http_status)


@method_decorator(csrf_exempt, name="dispatch")  # signed by the provider, not by a session
class Webhook(View):
    """Shared checks; subclasses implement handle(). A plain Django view: Django REST
    framework's request wrapping and content negotiation were 10% of a webhook's CPU
    (issue 16), for a JSON answer that JsonResponse gives as well."""

    http_method_names = ["post"]
    provider = ""
    content_type = ""

    @property
    def max_bytes(self) -> int:
        return settings.WEBHOOK_MAX_BYTES

    def post(self, request, tenant: str):
        started = time.perf_counter()
        try:
            response = self._checked(request, tenant)
        except WebhookError as exc:
            log.warning("webhook refused: %s", exc.detail, extra={"provider": self.provider, "status": exc.http_status})
            response = _error(exc.http_status, exc.code, exc.detail)
        metrics.WEBHOOK_LATENCY.labels(provider=self.provider).observe(time.perf_counter() - started)
        return response

    def _checked(self, request, slug: str):
        length = request.META.get("CONTENT_LENGTH") or "0"
        # isdigit() alone admits "²" and other Unicode digits that int() refuses.
        if not (length.isascii() and length.isdigit()) or int(length) > self.max_bytes:
            raise WebhookError(413, "too_large", f"body larger than {self.max_bytes} bytes")
        # PostgreSQL refuses a NUL in a query parameter (a "%00" in the URL).
        tenant = self.find_tenant(slug) if "\x00" not in slug else None
        if tenant is None:
            raise WebhookError(404, "unknown_tenant", f"no tenant {slug!r}")
        if (request.content_type or "").split(";")[0].strip().lower() != self.content_type:
            raise WebhookError(415, "unsupported_media_type", f"expected {self.content_type}")
        return self.handle(request, tenant)

    def find_tenant(self, slug: str) -> Tenant | None:
        return Tenant.objects.filter(slug=slug).first()

    def handle(self, request, tenant: Tenant):  # pragma: no cover - abstract
        raise NotImplementedError


class TwilioWebhook(Webhook):
    provider = Provider.TWILIO
    content_type = "application/x-www-form-urlencoded"

    def find_tenant(self, slug: str) -> Tenant | None:
        # Cached for a few seconds (whatsapp.inbound.tenants): Twilio's webhooks are the
        # traffic. The sidecar's read the row each time: its refused-message handling
        # (a renamed tenant is a 404 it keeps for staff) must see a rename at once.
        return cached_tenant(slug)

    def form(self, request):
        try:
            data = request.POST
        except (SuspiciousOperation, RequestDataTooBig) as exc:  # e.g. more fields than Django parses
            raise WebhookError(400, "bad_request", str(exc)) from exc
        if not twilio_signature_valid(request, data):
            raise WebhookError(403, "bad_signature", "X-Twilio-Signature is missing or does not match")
        # Signed as sent; stored without NUL characters, which PostgreSQL text cannot hold.
        return {key: value.replace("\x00", "") for key, value in data.items()}

    @staticmethod
    def require(data, *fields) -> None:
        missing = [f for f in fields if not (data.get(f) or "").strip()]
        if missing:
            raise WebhookError(400, "missing_fields", "missing: " + ", ".join(missing))


class TwilioInbound(TwilioWebhook):
    def handle(self, request, tenant):
        data = self.form(request)
        self.require(data, "MessageSid", "From")
        if len(data["MessageSid"]) > 100:
            raise WebhookError(400, "bad_field", "MessageSid is longer than 100 characters")
        phone = normalize_phone(data["From"])
        if not PHONE.fullmatch(phone):
            raise WebhookError(400, "bad_from", "From is not a phone number")
        num_media = int(data.get("NumMedia") or 0) if (data.get("NumMedia") or "0").isdecimal() else 0
        body = data.get("Body") or ""
        media_type = "text"
        if num_media:
            media_type = (data.get("MediaContentType0") or "media").split("/")[0][:20]
        elif data.get("Latitude"):
            media_type = "location"
        if media_type == "text" and not body.strip():
            raise WebhookError(400, "missing_fields", "missing: Body")
        inbound = Inbound(
            tenant=tenant,
            provider=Provider.TWILIO,
            provider_message_id=data["MessageSid"],
            phone=phone,
            body=body[:4096],
            media_type=media_type,
            name=(data.get("ProfileName") or "")[:200],
            media=twilio_media(data, num_media),
        )
        try:
            accept_inbound(inbound)
        except IntegrityError:
            # The cached tenant was deleted meanwhile (its id fails the foreign key): read
            # it again; gone for good is a 404, as for any unknown tenant.
            fresh = uncached_tenant(self.kwargs["tenant"])
            if fresh is None:
                raise WebhookError(404, "unknown_tenant", f"no tenant {self.kwargs['tenant']!r}") from None
            if fresh.pk == tenant.pk:
                raise
            accept_inbound(dataclasses.replace(inbound, tenant=fresh))
        # An empty TwiML response: the answer comes later, through the API.
        return HttpResponse(EMPTY_TWIML, content_type="text/xml")


def twilio_media(data: dict, num_media: int) -> list[tuple[str, str]]:
    """(MediaUrlN, MediaContentTypeN) of each attachment; WhatsApp sends at most one, Twilio
    documents up to ten."""
    found = []
    for n in range(min(num_media, 10)):
        url = (data.get(f"MediaUrl{n}") or "").strip()
        if url.startswith(("https://", "http://")):
            found.append((url, (data.get(f"MediaContentType{n}") or "").strip()))
    return found


class TwilioStatus(TwilioWebhook):
    def handle(self, request, tenant):
        data = self.form(request)
        self.require(data, "MessageSid", "MessageStatus")
        key = request.GET.get("key", "")
        message = find_outbound(Provider.TWILIO, data["MessageSid"], key)
        if message is None or message.tenant_id != tenant.pk:
            # Not ours (or not stored yet): acknowledge so Twilio does not retry forever.
            return JsonResponse({"ok": True, "applied": False, "reason": "unknown message"})
        moved = apply_receipt(message, data["MessageStatus"], data.get("ErrorCode") or "",
                              provider=Provider.TWILIO, provider_message_id=data["MessageSid"], idempotency_key=key)
        return JsonResponse({"ok": True, "applied": moved, "status": message.status})


class SidecarWebhook(Webhook):
    provider = Provider.BAILEYS
    content_type = "application/json"

    @property
    def max_bytes(self) -> int:
        # Sized for the longest WhatsApp text: a refusal here would lose the message.
        return settings.SIDECAR_WEBHOOK_MAX_BYTES

    def payload(self, request) -> dict:
        body = request.body
        problem = sidecar_signature_problem(request, body)
        if problem:
            raise WebhookError(403, "bad_signature", problem)
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested deep
            raise WebhookError(400, "bad_json", "body is not valid UTF-8 JSON") from exc
        if not isinstance(data, dict):
            raise WebhookError(400, "bad_json", "body must be a JSON object")
        return data

    @staticmethod
    def text_field(data: dict, name: str, required: bool = True, limit: int = 4096) -> str:
        value = data.get(name)
        if isinstance(value, str):
            value = value.replace("\x00", "")  # PostgreSQL text cannot hold NUL characters
        if value is None or value == "":
            if required:
                raise WebhookError(400, "missing_fields", f"missing: {name}")
            return ""
        if not isinstance(value, (str, int)):
            raise WebhookError(400, "bad_field", f"{name} must be a string")
        return str(value)[:limit]


class BaileysInbound(SidecarWebhook):
    def handle(self, request, tenant):
        _, created = accept_inbound(sidecar_inbound(tenant, self.payload(request)))
        return JsonResponse({"ok": True, "duplicate": not created})


def sidecar_inbound(tenant: Tenant, data: dict) -> Inbound:
    """The inbound message in a sidecar webhook body (also used for a refused one that
    staff store from the dead letters); WebhookError if it is not a valid one."""
    text_field = SidecarWebhook.text_field
    message_id = text_field(data, "id", limit=100)
    # The sidecar treats a 4xx as poison (never retried), so every real message must be
    # accepted: `from` is null when WhatsApp gave only a LID; the contact is then
    # known by its LID JID and answered there.
    jids = [text_field(data, name, required=False, limit=100) for name in ("fromJid", "fromAltJid")]
    wa_jid = next((j for j in jids if j.endswith("@s.whatsapp.net")), "")
    lid_jid = next((j for j in jids if j.endswith("@lid")), "")
    phone = normalize_phone(text_field(data, "from", required=False, limit=100) or wa_jid)
    if phone and not PHONE.fullmatch(phone):
        raise WebhookError(400, "bad_from", "from is not a phone number")
    if not phone and not lid_jid:
        raise WebhookError(400, "missing_fields", "missing: from (or a fromJid ending in @lid)")
    media_type = text_field(data, "type", required=False, limit=20) or "text"
    if media_type != "text" and media_type not in MEDIA_TYPES:
        media_type = "media"
    text = text_field(data, "text", required=media_type == "text", limit=settings.WHATSAPP_MAX_TEXT)
    return Inbound(
        tenant=tenant,
        provider=Provider.BAILEYS,
        provider_message_id=message_id,
        phone=phone,
        body=text,
        media_type=media_type,
        name=text_field(data, "pushName", required=False, limit=200),
        wa_jid=wa_jid,
        lid_jid=lid_jid,
        media=sidecar_attachments(data) if media_type != "text" else [],
    )


class BaileysStatus(SidecarWebhook):
    def handle(self, request, tenant):
        data = self.payload(request)
        message_id = self.text_field(data, "messageId", limit=100)
        new_status = self.text_field(data, "status", limit=20)
        key = self.text_field(data, "idempotencyKey", required=False, limit=200)
        message = find_outbound(Provider.BAILEYS, message_id, key)
        if message is None or message.tenant_id != tenant.pk:
            return JsonResponse({"ok": True, "applied": False, "reason": "unknown message"})
        error_code = self.text_field(data, "errorCode", required=False, limit=20)
        moved = apply_receipt(message, new_status, error_code, provider=Provider.BAILEYS,
                              provider_message_id=message_id, idempotency_key=key)
        return JsonResponse({"ok": True, "applied": moved, "status": message.status})
