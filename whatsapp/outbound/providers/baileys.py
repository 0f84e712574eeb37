"""The tenant's own WhatsApp Web session, through the sidecar's HTTP contract
(DESIGN.md). Short timeouts: a hung sidecar must cost a second, not fifteen. The sidecar
is found at send time from the tenant's shard (whatsapp.sessions.sidecar_client), so a
send after a takeover or a move goes to the new owner."""

from __future__ import annotations

from urllib.parse import quote

import requests
from django.conf import settings

from whatsapp.outbound import pacing
from whatsapp.outbound.presence import presence_for
from whatsapp.outbound.providers.base import (
    AMBIGUOUS,
    PACED,
    PERMANENT,
    TRANSIENT,
    UNAVAILABLE,
    OutgoingPart,
    ProviderError,
)
from whatsapp.outbound.providers.http_errors import request_never_left
from whatsapp.outbound.session_content import media_payload
from whatsapp.sessions.sidecar_client import SidecarClient, SidecarUnavailable, is_fenced, sidecar_for

MEDIA_UPLOAD_SECONDS = 15.0


class BaileysProvider:
    name = "baileys"
    max_body = 4096

    def __init__(self) -> None:
        self.timeout = (settings.SIDECAR_CONNECT_TIMEOUT, settings.SIDECAR_READ_TIMEOUT)

    @staticmethod
    def template_for(message) -> None:
        return None  # the business's own number writes freely: no window, no templates

    @staticmethod
    def wants_template(error: ProviderError) -> bool:
        return False

    @staticmethod
    def _sidecar(message) -> SidecarClient:
        """Nothing was sent when the tenant's shard has no owner: try again later."""
        try:
            return sidecar_for(message.tenant)
        except SidecarUnavailable as exc:
            raise ProviderError(str(exc), UNAVAILABLE, "sidecar_down") from exc

    @staticmethod
    def _path(message, suffix: str) -> str:
        return SidecarClient.session_path(message.tenant.slug, suffix)

    def can_send(self, message) -> bool:
        """canSend, not merely "connected". A sidecar that does not answer within a second
        or so cannot send either: the message moves to the next provider at once (nothing
        was sent), and the failure counts against the breaker, which soon skips the check."""
        sidecar = self._sidecar(message)
        try:
            response = sidecar.request(
                "GET", self._path(message, "/status"), timeout=(self.timeout[0], settings.SIDECAR_STATUS_TIMEOUT)
            )
        except requests.RequestException as exc:
            raise ProviderError(f"sidecar unreachable: {exc}", UNAVAILABLE, "sidecar_down") from exc
        if is_fenced(response):
            raise ProviderError("sidecar fenced: its shard changed owner", UNAVAILABLE, "fenced")
        if response.status_code != 200:
            return False
        return bool(response.json().get("canSend"))

    def send(self, part: OutgoingPart) -> str:
        tenant = part.message.tenant
        slot = pacing.wait_for_slot(tenant.slug, part.key, tenant.baileys_sends_per_minute)
        if slot.deferred:
            # Not a failure: the session is busy. The slot stays reserved for this key.
            raise ProviderError(
                f"paced: the next send slot is in {slot.wait:.1f} s", PACED, pacing.PACED, retry_after=slot.wait
            )
        payload = {"to": self.recipient(part), "text": part.text, "idempotencyKey": part.key}
        timeout = self.timeout
        if part.media is not None:
            payload["media"] = media_payload(part.media)
            # The session uploads the file to WhatsApp before it sends (bounded by the
            # sidecar's send timeout, 15 s by default): wait for that too, rather than
            # make a slow upload an unknown outcome to resolve.
            timeout = (timeout[0], timeout[1] + MEDIA_UPLOAD_SECONDS)
        presence = presence_for(part)
        if presence is not None:
            # The sidecar shows "typing..." before it sends: the answer comes that much later.
            payload["presence"] = presence
            timeout = (timeout[0], timeout[1] + presence["typingMs"] / 1000)
        sidecar = self._sidecar(part.message)
        try:
            response = sidecar.request("POST", self._path(part.message, "/messages"), json=payload, timeout=timeout)
        except requests.ConnectionError as exc:
            if request_never_left(exc):  # refused, unresolvable, connect timeout
                raise ProviderError(f"sidecar unreachable: {exc}", TRANSIENT, "sidecar_down") from exc
            raise ProviderError(f"sidecar connection lost: {exc}", AMBIGUOUS, "connection") from exc
        except requests.Timeout as exc:
            raise ProviderError(f"sidecar did not answer: {exc}", AMBIGUOUS, "read_timeout") from exc
        return self._result(response)

    @staticmethod
    def recipient(part: OutgoingPart) -> str:
        """The phone number; for a contact WhatsApp showed us only by LID, its JID."""
        contact = part.message.contact
        return part.to or contact.wa_jid or contact.lid_jid

    @staticmethod
    def _result(response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if 200 <= response.status_code < 300 and body.get("messageId"):
            return body["messageId"]
        error = body.get("error") or f"http_{response.status_code}"
        detail = f"sidecar {response.status_code} {error}: {body.get('detail', '')}".strip()
        if response.status_code == 504 or error in {"send_timeout", "outcome_unknown"}:
            raise ProviderError(detail, AMBIGUOUS, error)
        if 200 <= response.status_code < 300:
            # The sidecar took it but the answer has no WhatsApp id: it may have been
            # sent; its record of the key says (lookup).
            raise ProviderError(f"sidecar {response.status_code} without a messageId", AMBIGUOUS, "no_message_id")
        if response.status_code == 409 and error in {"not_ready", "fenced"}:
            # fenced: the shard changed owner since we read its row; nothing was sent.
            raise ProviderError(detail, UNAVAILABLE, error)
        if response.status_code == 400 or (response.status_code == 409 and error == "idempotency_key_conflict"):
            # A key already used for another recipient or text is refused the same way
            # every time, and says nothing of the session's health.
            raise ProviderError(detail, PERMANENT, error)
        raise ProviderError(detail, TRANSIENT, error)

    def lookup(self, part: OutgoingPart, since) -> str | None:
        try:
            sidecar = sidecar_for(part.message.tenant)
            response = sidecar.request("GET", self._path(part.message, f"/messages/{quote(part.key, safe='')}"))
            body = response.json()
        except (requests.RequestException, ValueError, SidecarUnavailable) as exc:
            raise ProviderError(f"sidecar lookup failed: {exc}", AMBIGUOUS, "lookup") from exc
        outcome = body.get("outcome")
        if outcome == "sent":
            return body.get("messageId") or "unknown-id"
        if outcome in {"failed", "absent"}:
            return None
        raise ProviderError(f"sidecar says the outcome is {outcome}", AMBIGUOUS, "outcome_unknown")
