"""Move a tenant's WhatsApp Web session to another shard (docs/SCALING.md, rebalancing)."""

from __future__ import annotations

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_slug

from whatsapp.models import Tenant
from whatsapp.sessions.moves import MoveRefused, request_move
from whatsapp.sessions.shards import shard_name_of


class Command(BaseCommand):
    help = ("Move a tenant's WhatsApp Web session to another shard: the old shard's owner stops it, "
            "then the new shard's owner starts it.")

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="the tenant's slug")
        parser.add_argument("shard", help="the shard to move it to (created if new)")
        parser.add_argument("--force", action="store_true",
                            help="the old shard has no owner (host dead, no standby): switch at once")
        parser.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                            help="wait until the switch is done (0: return once queued)")

    def handle(self, *args, **opts):
        try:
            validate_slug(opts["shard"])
        except ValidationError as exc:
            raise CommandError(f"not a shard name: {opts['shard']!r}") from exc
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant {opts['tenant']!r}")
        try:
            said = request_move(tenant, opts["shard"], force=opts["force"])
        except MoveRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(said)
        deadline = time.monotonic() + opts["wait"]
        while time.monotonic() < deadline:
            tenant.refresh_from_db()
            if shard_name_of(tenant) == opts["shard"]:
                self.stdout.write(f"{tenant.slug} is in shard {opts['shard']}")
                return
            time.sleep(0.5)
        if opts["wait"]:
            raise CommandError(f"the move was not done within {opts['wait']:.0f} s: does shard "
                               f"{shard_name_of(tenant)} have an owner? (see the Shards admin page)")
