"""Twilio's WhatsApp API through the real twilio client (pointed at TWILIO_API_BASE_URL
when set), with every error sorted into transient, permanent or ambiguous."""

from __future__ import annotations

import json
from datetime import timedelta

import requests
from django.conf import settings
from django.utils import timezone
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from whatsapp.media.signed import signed_url
from whatsapp.outbound.providers.base import AMBIGUOUS, PERMANENT, TRANSIENT, OutgoingPart, ProviderError
from whatsapp.outbound.providers.http_errors import request_never_left
from whatsapp.outbound.templates import template_sid_for

# Twilio error codes that will fail the same way every time.
PERMANENT_CODES = {
    21211,  # invalid 'To' number
    21408,  # permission to send to this region not enabled
    21610,  # recipient unsubscribed (STOP)
    21614,  # not a mobile number
    20003,  # authentication failed
    20404,  # resource not found (wrong account / sender)
    63003,  # channel could not find the destination address
    63016,  # outside the 24-hour window: needs a template (ContentSid)
    63024,  # invalid message recipient
}
RETRYABLE_CODES = {20429, 63018, 20500, 20503}  # rate limits and Twilio-side trouble
# What the ErrorCode of a failed/undelivered status callback means, for the dead letter
# staff read (https://www.twilio.com/docs/api/errors).
ERROR_MEANINGS = {
    "11200": "Twilio could not fetch the media file from our signed URL (HTTP retrieval failure)",
    "12300": "Twilio does not accept the media file's Content-Type",
    "30003": "unreachable destination handset",
    "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier",
    "30008": "unknown error",
    "63003": "channel could not find the destination address (not on WhatsApp)",
    "63016": "outside the 24-hour window: only a template can be sent",
    "63024": "invalid message recipient",
    "63032": "the user's WhatsApp version cannot receive this message",
    "63049": "Meta chose not to deliver this marketing message",
}
WINDOW_CLOSED = "63016"
# WhatsApp's customer service window: free-form messages only within 24 hours of the
# customer's last message; after it only approved templates (error 63016).
TWILIO_WINDOW = timedelta(hours=24)


def classify(exc: Exception) -> ProviderError:
    """Turn whatever the twilio client raised into a ProviderError with a kind."""
    if isinstance(exc, (TwilioRestException, TwilioServiceException)):
        code = getattr(exc, "code", None)
        status = getattr(exc, "status", 0) or 0
        text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "") or ""
        message = f"Twilio {status} {code or ''}: {text}".strip()
        if code in RETRYABLE_CODES or status == 429 or status >= 500:
            return ProviderError(message, TRANSIENT, code or status)
        if code in PERMANENT_CODES or 400 <= status < 500:
            return ProviderError(message, PERMANENT, code or status)
        return ProviderError(message, TRANSIENT, code or status)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ProviderError(f"connect timeout: {exc}", TRANSIENT, "connect_timeout")
    if isinstance(exc, requests.exceptions.ConnectionError) and request_never_left(exc):
        return ProviderError(f"connection refused: {exc}", TRANSIENT, "connection")
    if isinstance(exc, (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)):
        # The request was written; Twilio may have accepted it.
        return ProviderError(f"no answer after sending: {exc}", AMBIGUOUS, "read_timeout")
    if isinstance(exc, json.JSONDecodeError):
        # The twilio client parses the body only of a 2xx answer (an error's body is read
        # inside its exception): Twilio created the message and the answer was garbled.
        return ProviderError(f"unreadable answer to a send: {exc}", AMBIGUOUS, "unreadable_answer")
    return ProviderError(f"{type(exc).__name__}: {exc}", TRANSIENT, "error")


class TwilioProvider:
    name = "twilio"

    def __init__(self) -> None:
        self.max_body = settings.TWILIO_MAX_BODY
        # twilio's client has no timeout by default; one number bounds connect and read.
        http = TwilioHttpClient(timeout=settings.TWILIO_READ_TIMEOUT)
        self.client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http)
        if settings.TWILIO_API_BASE_URL:
            self.client.api.base_url = settings.TWILIO_API_BASE_URL.rstrip("/")

    def can_send(self, message) -> bool:
        # A contact WhatsApp showed us only by its LID has no number Twilio could reach.
        return bool(message.tenant.twilio_number and message.contact.phone)

    def template_for(self, message) -> str | None:
        """None inside the 24-hour window (free text may go out); outside it the template
        to send instead, "" when the tenant has none."""
        last_inbound = message.contact.last_twilio_inbound_at
        if last_inbound and timezone.now() - last_inbound < TWILIO_WINDOW:
            return None
        return template_sid_for(message)

    @staticmethod
    def wants_template(error: ProviderError) -> bool:
        """Twilio refused free text because the window closed meanwhile (63016)."""
        return error.code == WINDOW_CLOSED

    def send(self, part: OutgoingPart) -> str:
        kwargs = {
            "from_": f"whatsapp:{part.message.tenant.twilio_number}",
            "to": f"whatsapp:{part.to}",
        }
        if settings.PUBLIC_BASE_URL:
            # The key lets a receipt find its reply even when Twilio's answer to this
            # request was lost (an unknown outcome).
            kwargs["status_callback"] = (
                f"{settings.PUBLIC_BASE_URL}/webhooks/twilio/{part.message.tenant.slug}/status/?key={part.key}"
            )
        if part.template_sid:
            kwargs["content_sid"] = part.template_sid
            kwargs["content_variables"] = json.dumps(part.template_variables)
        else:
            if part.text or not part.media:
                kwargs["body"] = part.text
            if part.media is not None:
                # Twilio fetches the file itself from a public URL (MediaUrl), so it gets a
                # signed, expiring one under PUBLIC_BASE_URL (whatsapp.media.signed).
                if not settings.PUBLIC_BASE_URL:
                    raise ProviderError("PUBLIC_BASE_URL is not set: Twilio cannot fetch the file", PERMANENT,
                                        "no_public_url")
                kwargs["media_url"] = [signed_url(part.media)]
        try:
            created = self.client.messages.create(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes raw
            raise classify(exc) from exc
        if not created.sid:
            # Accepted, but without the sid that receipts and lookups need: find it by lookup.
            raise ProviderError("Twilio accepted the send but returned no sid", AMBIGUOUS, "no_sid")
        return created.sid

    def lookup(self, part: OutgoingPart, since) -> str | None:
        """Twilio has no idempotency key, so find the part among the messages to this
        customer from our sender. Not with a DateSent filter: a message Twilio still
        holds as queued has no date_sent and no DateSent filter returns it (and DateSent
        is a date, not a time). Instead read the newest messages and compare
        date_created with our start, less a margin for clock skew. The margin would let
        an older identical message match, so a message already recorded as another
        attempt's is never taken (see lost_send_matches)."""
        earliest = since - timedelta(seconds=settings.TWILIO_LOOKUP_SKEW_SECONDS)
        scan = settings.TWILIO_LOOKUP_SCAN
        try:
            found = list(self.client.messages.stream(
                to=f"whatsapp:{part.to}", from_=f"whatsapp:{part.message.tenant.twilio_number}",
                limit=scan, page_size=min(scan, 100),
            ))
        except Exception as exc:  # noqa: BLE001
            raise ProviderError(f"lookup failed: {exc}", AMBIGUOUS, "lookup") from exc
        recent = [m for m in found if m.date_created is None or m.date_created >= earliest]
        match = lost_send_matches(part, recent)
        if match:
            return match
        if len(found) >= scan and len(recent) == len(found):
            # Everything read was recent and there may be more: we cannot say "not sent".
            raise ProviderError(f"lookup read {scan} recent messages without an answer", AMBIGUOUS, "lookup")
        return None


def lost_send_matches(part: OutgoingPart, candidates) -> str | None:
    """The sid of the oldest candidate that can be this part: the same text (for a
    template, whose body Twilio renders, any message), and not already known as the
    message of some attempt (a reply sent earlier, another part, another template)."""
    from whatsapp.models import DeliveryAttempt

    known = set(
        DeliveryAttempt.objects.filter(
            provider="twilio", provider_message_id__in=[m.sid for m in candidates]
        ).values_list("provider_message_id", flat=True)
    ) if candidates else set()
    for item in reversed(candidates):  # oldest first: the earliest unclaimed copy is ours
        if item.sid in known or (item.direction or "").startswith("inbound"):
            continue
        if part.template_sid or (item.body or "") == part.text:
            return item.sid
    return None
