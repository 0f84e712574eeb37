from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from whatsapp.privacy import ErasureRefused, erase_contact


class Command(BaseCommand):
    help = (
        "Erase one customer of a tenant everywhere: contact, messages, attempts, dead letters (and so the bot's "
        "memory of them), the sidecar's idempotency records and spooled webhooks. Either all of it or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("customer", help="+15551234567, <digits>@s.whatsapp.net or <digits>@lid")

    def handle(self, *args, **opts):
        try:
            record = erase_contact(
                opts["tenant"], opts["customer"], requested_by=f"command:{getpass.getuser()}", via="command"
            )
        except ErasureRefused as exc:
            raise CommandError(str(exc)) from exc
        counts = ", ".join(f"{key} {value}" for key, value in record.counts.items())
        self.stdout.write(self.style.SUCCESS(f"Erased (erasure #{record.pk}, tenant {record.tenant_slug}): {counts}"))
