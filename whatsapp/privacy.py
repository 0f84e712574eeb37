"""Erasing a customer ("right to be forgotten"): everything we keep about one contact of
one tenant, in the database and in the sidecar, in one step that either finishes or
erases nothing. What stays is an ErasureLog row with counts, which never names the
customer. docs/SECURITY.md describes where customer data lives and why this covers it.

Order matters. The contact's rows are locked and deleted inside a transaction, then the
sidecar is asked to forget the customer, and only when it has answered is the
transaction committed. A sidecar that is down therefore rolls everything back: the
erasure reports that and can simply be run again (every step is idempotent)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import requests
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from whatsapp.models import Contact, DeadLetter, DeliveryAttempt, Direction, ErasureLog, Message, Status, Tenant
from whatsapp.sessions.sidecar_client import SidecarUnavailable, sidecar_for

log = logging.getLogger("whatsapp.privacy")

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_PHONE_JID = re.compile(r"^([1-9]\d{6,14})(?::\d+)?@s\.whatsapp\.net$")
_LID_JID = re.compile(r"^\d{1,30}@lid$")
# Bounded: rewriting a large idempotency file takes longer than one send status call.
SIDECAR_ERASE_TIMEOUT = (2.0, 30.0)


class ErasureRefused(Exception):
    """Bad input, or a state in which erasing now would be wrong. Nothing was erased."""


class SidecarErasureFailed(ErasureRefused):
    """The sidecar did not confirm the erasure; the database was rolled back."""


@dataclass(frozen=True)
class Identifier:
    """How the operator named the customer: a phone number or a WhatsApp JID."""

    phone: str = ""
    jid: str = ""

    def lookup(self) -> Q:
        if self.phone:
            return Q(phone=self.phone) | Q(wa_jid=f"{self.phone[1:]}@s.whatsapp.net")
        return Q(lid_jid=self.jid)


def parse_identifier(raw: str) -> Identifier:
    """'+15551234567', '15551234567@s.whatsapp.net' or '98765432101234@lid'; anything
    else is refused (a typo must not erase someone else, nor nothing silently)."""
    value = (raw or "").strip()
    if _E164.match(value):
        return Identifier(phone=value)
    phone_jid = _PHONE_JID.match(value)
    if phone_jid:
        return Identifier(phone=f"+{phone_jid.group(1)}")
    if _LID_JID.match(value):
        return Identifier(jid=value)
    raise ErasureRefused(
        "Not a phone number or WhatsApp id: use E.164 (+15551234567), <digits>@s.whatsapp.net or <digits>@lid."
    )


def find_contact(tenant_slug: str, raw_identifier: str) -> Contact:
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    if tenant is None:
        raise ErasureRefused(f"No tenant {tenant_slug!r}; nothing was erased.")
    contact = Contact.objects.filter(tenant=tenant).filter(parse_identifier(raw_identifier).lookup()).first()
    if contact is None:
        raise ErasureRefused(f"Tenant {tenant_slug!r} has no contact with that number or id; nothing was erased.")
    return contact


def erase_contact(tenant_slug: str, raw_identifier: str, *, requested_by: str, via: str) -> ErasureLog:
    """Erase one customer of one tenant everywhere. Raises ErasureRefused (nothing erased)."""
    return erase(find_contact(tenant_slug, raw_identifier), requested_by=requested_by, via=via)


def erase(contact: Contact, *, requested_by: str, via: str) -> ErasureLog:
    tenant = contact.tenant
    try:
        with transaction.atomic():
            # Locks the contact and its messages: a send task's claim (a conditional
            # UPDATE) waits for us and then finds nothing to send.
            contact = Contact.objects.select_for_update().get(pk=contact.pk)
            messages = list(
                Message.objects.select_for_update().filter(contact=contact).values("pk", "direction", "status",
                                                                                  "lease_until")
            )
            _refuse_while_sending(messages)
            counts = _delete_rows(contact, [m["pk"] for m in messages])
            counts["messages_in"] = sum(m["direction"] == Direction.INBOUND for m in messages)
            counts["messages_out"] = len(messages) - counts["messages_in"]
            counts.update(_erase_in_sidecar(tenant.slug, contact))
            record = ErasureLog.objects.create(
                tenant=tenant, tenant_slug=tenant.slug, requested_by=requested_by, via=via, counts=counts
            )
    except SidecarErasureFailed as exc:
        log.error("erasure rolled back: %s", exc, extra={"tenant": tenant.slug, "requested_by": requested_by})
        raise
    log.info(
        "contact erased",
        extra={"tenant": tenant.slug, "erasure_id": record.pk, "requested_by": requested_by, "via": via,
               "counts": counts},
    )
    return record


def _refuse_while_sending(messages: list[dict]) -> None:
    """A reply being handed to a provider right now would land in the sidecar after we
    erased it there; its claim expires within SEND_LEASE_SECONDS."""
    now = timezone.now()
    busy = [m for m in messages if m["status"] == Status.SENDING and m["lease_until"] and m["lease_until"] > now]
    if busy:
        until = max(m["lease_until"] for m in busy)
        raise ErasureRefused(
            f"A reply to this customer is being sent right now; nothing was erased. Try again after "
            f"{until:%H:%M:%S} UTC."
        )


def _delete_rows(contact: Contact, message_ids: list[int]) -> dict[str, int]:
    attempts = DeliveryAttempt.objects.filter(message_id__in=message_ids)
    dead_letters = DeadLetter.objects.filter(message_id__in=message_ids)
    counts = {
        "attempts": attempts.count(),
        "dead_letters": dead_letters.count(),
        "admin_log_entries_masked": _mask_admin_log(contact, message_ids, list(dead_letters.values_list("pk", flat=True)),
                                                    list(attempts.values_list("pk", flat=True))),
    }
    attempts.delete()
    dead_letters.delete()
    # Replies point at the inbound messages they answer (in_reply_to): outbound first.
    Message.objects.filter(pk__in=message_ids, direction=Direction.OUTBOUND).delete()
    Message.objects.filter(pk__in=message_ids).delete()
    contact.delete()
    return counts


def _mask_admin_log(contact: Contact, message_ids: list[int], dead_letter_ids: list[int],
                    attempt_ids: list[int]) -> int:
    """Staff actions on the erased rows stay in the admin's history (who requeued what,
    when) without naming the customer: a contact's repr holds their name."""
    by_model = {Contact: [contact.pk], Message: message_ids, DeadLetter: dead_letter_ids, DeliveryAttempt: attempt_ids}
    query = Q(pk__in=[])
    for model, ids in by_model.items():
        if ids:
            query |= Q(content_type=ContentType.objects.get_for_model(model), object_id__in=[str(i) for i in ids])
    return LogEntry.objects.filter(query).update(object_repr="[erased]", change_message="")


def _erase_in_sidecar(tenant_slug: str, contact: Contact) -> dict[str, int]:
    """Ask the sidecar to forget every id of the customer: idempotency records and
    spooled webhooks. Raises SidecarErasureFailed unless it confirms each one."""
    bodies = []
    if contact.phone:
        bodies.append({"tenant": tenant_slug, "phone": contact.phone})
    for jid in (contact.lid_jid, contact.wa_jid if not contact.phone else ""):
        if jid:
            bodies.append({"tenant": tenant_slug, "jid": jid})
    try:
        client = sidecar_for(contact.tenant)
    except SidecarUnavailable as exc:
        raise SidecarErasureFailed(
            f"The sidecar of this tenant's shard is not available ({exc}), so its copies could not be erased; "
            "nothing was erased. Run the erasure again once the shard has an owner."
        ) from exc
    totals = {"sidecar_idempotency_records": 0, "sidecar_spool_items": 0}
    for body in bodies:
        try:
            response = client.request("POST", "/privacy/erase", json=body, timeout=SIDECAR_ERASE_TIMEOUT)
        except requests.RequestException as exc:
            raise SidecarErasureFailed(
                f"The sidecar ({client.base}) is not reachable ({type(exc).__name__}), so its copies could not be "
                "erased; nothing was erased. Run the erasure again once the sidecar is up."
            ) from exc
        try:
            answer = response.json() if response.status_code == 200 else {}
            records, spooled = int(answer["idempotencyRecords"]), int(answer["spoolItems"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SidecarErasureFailed(
                f"The sidecar ({client.base}) did not confirm the erasure (HTTP {response.status_code}); nothing was "
                "erased. Run the erasure again once the sidecar is healthy."
            ) from exc
        totals["sidecar_idempotency_records"] += records
        totals["sidecar_spool_items"] += spooled
    return totals
