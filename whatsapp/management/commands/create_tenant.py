from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from whatsapp.models import Tenant


class Command(BaseCommand):
    help = "Create or update a tenant (a business) and print its webhook URLs."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--twilio-number", default="", help="E.164 Twilio WhatsApp sender, e.g. +14155238886")
        parser.add_argument("--baileys", action="store_true", help="Also send through a WhatsApp Web session (first)")
        parser.add_argument("--no-twilio", action="store_true", help="Do not send through Twilio")
        parser.add_argument("--engine", choices=["rules", "llm"], default="")
        parser.add_argument("--template-sid", default="", help="ContentSid for replies outside the 24-hour window")

    def handle(self, *args, **opts):
        tenant = Tenant.objects.filter(slug=opts["slug"]).first() or Tenant(slug=opts["slug"])
        tenant.name = opts["name"]
        tenant.twilio_number = opts["twilio_number"] or tenant.twilio_number
        tenant.baileys_enabled = opts["baileys"] or tenant.baileys_enabled
        tenant.twilio_enabled = not opts["no_twilio"]
        tenant.bot_engine = opts["engine"] or tenant.bot_engine
        tenant.twilio_template_sid = opts["template_sid"] or tenant.twilio_template_sid
        try:
            tenant.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        created = tenant.pk is None
        tenant.save()
        self.stdout.write(self.style.SUCCESS(f"{'Created' if created else 'Updated'} tenant {tenant.slug}"))
        for line in webhook_lines(tenant):
            self.stdout.write(line)


def webhook_lines(tenant: Tenant) -> list[str]:
    from django.conf import settings

    base = settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
    return [
        f"  Twilio inbound webhook:   {base}/webhooks/twilio/{tenant.slug}/",
        f"  Twilio status callback:   {base}/webhooks/twilio/{tenant.slug}/status/",
        f"  Sidecar inbound webhook:  {base}/webhooks/baileys/{tenant.slug}/",
    ]
