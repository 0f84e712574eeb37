"""Rebalancing: moving a tenant's WhatsApp Web session to another shard (docs/SCALING.md).
The move itself is the lifecycle task `whatsapp.lifecycle.move`, run by the OLD shard's
owner (stop there, switch Tenant.shard, queue the start on the new shard). Staff ask for
it from the tenant's admin page or `manage.py move_tenant`."""

from __future__ import annotations

from whatsapp.models import Shard, Tenant
from whatsapp.sessions.shards import default_shard, enqueue_lifecycle, shard_name_of
from whatsapp.sessions.sidecar_client import SidecarUnavailable, route_for_shard

MOVE_TASK = "whatsapp.lifecycle.move"
START_TASK = "whatsapp.lifecycle.start"


class MoveRefused(Exception):
    pass


def switch_shard(tenant: Tenant, to_shard: str) -> None:
    Shard.objects.get_or_create(name=to_shard)
    Tenant.objects.filter(pk=tenant.pk).update(shard_id=None if to_shard == default_shard() else to_shard)


def old_owner_alive(tenant: Tenant) -> bool:
    try:
        route_for_shard(shard_name_of(tenant))
    except SidecarUnavailable:
        return False
    return True


def request_move(tenant: Tenant, to_shard: str, force: bool = False) -> str:
    """Queue the move on the old shard's queue; what happens, in words. With force, and
    only when the old shard has no owner (its lease expired: its sidecar and sockets are
    gone), switch at once instead of waiting for a standby to take the old shard over."""
    if not to_shard or to_shard != to_shard.strip():
        raise MoveRefused("no shard named")
    Shard.objects.get_or_create(name=to_shard)
    if shard_name_of(tenant) == to_shard:
        return f"{tenant.slug} is already in shard {to_shard}"
    if force:
        if old_owner_alive(tenant):
            raise MoveRefused(f"shard {shard_name_of(tenant)} has a live owner: move without --force, "
                              "so that the owner stops the session first")
        old = shard_name_of(tenant)
        switch_shard(tenant, to_shard)
        tenant.refresh_from_db()
        wanted = getattr(getattr(tenant, "session_state", None), "desired", "") == "running"
        if wanted:
            enqueue_lifecycle(START_TASK, tenant)
        return f"{tenant.slug} switched from ownerless shard {old} to {to_shard}" + (
            "; its session start is queued there" if wanted else "")
    enqueue_lifecycle(MOVE_TASK, tenant, to_shard)
    return (f"move of {tenant.slug} to shard {to_shard} queued: the owner of shard {shard_name_of(tenant)} stops "
            "the session, then it starts in the new shard")
