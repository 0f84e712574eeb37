"""Used by `make run`: a demo tenant with a few rules and an admin login, printed once."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from bots.models import Rule
from whatsapp.management.commands.create_tenant import webhook_lines
from whatsapp.models import SessionState, Tenant
from whatsapp.sessions.admin import session_url
from whatsapp.sessions.shards import enqueue_lifecycle

DEMO_RULES = [
    ("hours, open, opening", "We are open Sunday to Friday, 8:00-18:00."),
    ("price, prices, cost", "Our price list is at https://example.com/prices. Anything specific?"),
    ("address, where, location", "You can find us at 1 Example Street."),
]


class Command(BaseCommand):
    help = "Create the demo tenant and an admin user if they do not exist, and print how to use them."

    def add_arguments(self, parser):
        parser.add_argument("--run-dir", default=".run")

    def handle(self, *args, **opts):
        tenant, created = Tenant.objects.get_or_create(
            slug="demo", defaults={"name": "Demo Business", "twilio_number": "+14155238886",
                                   "baileys_enabled": settings.SIDECAR_TRANSPORT == "sandbox"}
        )
        if created:
            for pattern, answer in DEMO_RULES:
                Rule.objects.create(tenant=tenant, pattern=pattern, answer=answer)
        if tenant.baileys_enabled:
            self._start_session_once(tenant)
        password_file = Path(opts["run_dir"]) / "admin-password"
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "admin@example.com", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        base = settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
        self.stdout.write(self.style.SUCCESS("\nThe system is starting. Demo tenant 'demo':"))
        for line in webhook_lines(tenant):
            self.stdout.write(line)
        where = f"the password is in {password_file}" if password_file.exists() else "password as you set it"
        self.stdout.write(f"  Admin:  {base}/admin/  (user admin; {where})")
        if tenant.baileys_enabled:
            self.stdout.write(f"  WhatsApp Web session: {base}{session_url(tenant.slug)}")
        self.stdout.write("  Try it: .venv/bin/python manage.py send_test_webhook demo --body 'What are your opening hours?'\n")

    def _start_session_once(self, tenant: Tenant) -> None:
        """The demo's WhatsApp Web session is wanted running from the first start (the
        sandbox shows its QR code on the Sessions page); after that staff decide."""
        _state, created = SessionState.objects.get_or_create(tenant=tenant, defaults={"desired": "running"})
        if created:
            try:
                # Queued now, run by the lifecycle worker once it is up.
                enqueue_lifecycle("whatsapp.lifecycle.start", tenant)
            except Exception as exc:  # noqa: BLE001 - no broker: the health check starts it later
                self.stderr.write(f"could not queue the session start ({exc}); the health check will start it")
