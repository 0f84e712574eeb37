"""Collect the inbound webhooks Django refused (a 4xx) that the sidecar kept, and file
each as a dead letter. The sidecar's contract (token-protected, whatsapp/sidecar/README.md):

    GET    /inbound/rejected?limit=100  -> 200 {"items": [{"id", "tenant", "kind",
                                            "httpStatus", "error", "rejectedAt", "payload"}]}
    DELETE /inbound/rejected/{id}       -> 204 (idempotent)

Store first, then DELETE: the dead letter is unique on the item's id, so a crash (or a
failed DELETE) between the two files the item once, not twice, on the next run.
Receipts ("status" items) are dropped with a log line: a receipt only moves a sent reply
to delivered or read, staff cannot act on one, and the list must show what needs a person.
So are the owner's own phone messages ("owner" items): filed, they would read as a
customer's message and be answered.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import requests

from whatsapp.inbound.dead_letters import file_refused
from whatsapp.sessions.sidecar_client import SidecarClient, SidecarUnavailable, default_shard, sidecar_for_shard

log = logging.getLogger("whatsapp.rejected_inbound")


class RejectedInboxUnavailable(Exception):
    pass


class RejectedInbox:
    """What one shard's sidecar kept (default: the default shard's)."""

    def __init__(self, sidecar: SidecarClient | None = None, shard: str | None = None, base: str | None = None) -> None:
        if sidecar is None and base:
            sidecar = SidecarClient(base)
        if sidecar is None:
            try:
                sidecar = sidecar_for_shard(shard or default_shard())
            except SidecarUnavailable as exc:
                raise RejectedInboxUnavailable(str(exc)) from exc
        self.sidecar = sidecar

    def items(self, limit: int = 100) -> list[dict]:
        try:
            response = self.sidecar.request("GET", "/inbound/rejected", params={"limit": limit})
            response.raise_for_status()
            items = response.json()["items"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise RejectedInboxUnavailable(f"listing refused inbound messages failed: {exc}") from exc
        return [item for item in items if isinstance(item, dict) and item.get("id")]

    def forget(self, item_id: str) -> bool:
        try:
            response = self.sidecar.request("DELETE", f"/inbound/rejected/{quote(str(item_id), safe='')}")
        except requests.RequestException as exc:
            log.warning("could not delete a collected item from the sidecar: %s", exc, extra={"item": item_id})
            return False
        if response.status_code not in (204, 404):
            log.warning("sidecar answered %s to a delete", response.status_code, extra={"item": item_id})
            return False
        return True


def collect(inbox: RejectedInbox | None = None, limit: int = 100, shard: str | None = None) -> dict:
    inbox = inbox or RejectedInbox(shard=shard)
    counts = {"filed": 0, "receipts_dropped": 0, "not_deleted": 0}
    for item in inbox.items(limit):
        if item.get("kind") in ("status", "owner"):
            # An owner's phone message is not a customer's: filing it would answer it.
            log.warning(
                "a %s Django refused was dropped: HTTP %s %s", "receipt" if item["kind"] == "status" else "message the owner sent",
                item.get("httpStatus"), item.get("error"),
                extra={"tenant": item.get("tenant"), "item": item["id"]},
            )
            counts["receipts_dropped"] += 1
        else:
            file_refused(item)
            counts["filed"] += 1
        if not inbox.forget(item["id"]):
            counts["not_deleted"] += 1
    return counts
