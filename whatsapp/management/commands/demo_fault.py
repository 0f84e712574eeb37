"""Demo mode (`make run` without Twilio credentials): switch on a provider failure, to
watch retries, failover and dead letters happen. It drives the fault switches of the fake
Twilio API that `make run` starts (tests/fakes/twilio_server.py) and of the sidecar's
sandbox (whatsapp/sidecar/README.md); it refuses to run against the real services."""

from __future__ import annotations

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from whatsapp.models import Tenant
from whatsapp.sessions.sidecar_client import SidecarUnavailable, sidecar_for

DEFAULT_FAKE_TWILIO = "http://127.0.0.1:8010"  # scripts/run.sh, FAKE_TWILIO_PORT
TRANSIENT = (503, 20503)  # Twilio's "service unavailable": retried, then the next provider


class Command(BaseCommand):
    help = "Demo mode: make the fake Twilio API or the sandbox WhatsApp Web session fail (or stop failing)."

    def add_arguments(self, parser):
        parser.add_argument("target", choices=["twilio", "whatsapp-web", "reset"],
                            help="which provider fails; `reset` switches every fault off")
        parser.add_argument("--fail-next", type=int, default=0, metavar="N",
                            help="the next N sends fail with a transient error (retried with backoff)")
        parser.add_argument("--invalid-number", action="append", default=[], metavar="+E164",
                            help="twilio: sends to this number fail at once with 21211 (not a WhatsApp number)")
        parser.add_argument("--tenant", default="demo", help="whatsapp-web: whose session (default demo)")
        parser.add_argument("--fake-twilio", default="", help=f"the fake Twilio API (default {DEFAULT_FAKE_TWILIO})")

    def handle(self, *args, **opts):
        if opts["fail_next"] < 0:
            raise CommandError("--fail-next must be 0 or more")
        target = opts["target"]
        if target in ("twilio", "reset"):
            self._twilio(opts, reset=target == "reset")
        if target == "whatsapp-web":
            self._sandbox(opts["tenant"], opts["fail_next"])
        elif target == "reset":
            try:
                self._sandbox(opts["tenant"], 0)
            except CommandError as exc:  # no sandbox session to reset is not an error for `reset`
                self.stdout.write(f"sandbox WhatsApp Web: nothing to reset ({exc})")

    def _twilio(self, opts: dict, reset: bool) -> None:
        url = (opts["fake_twilio"] or settings.TWILIO_API_BASE_URL or DEFAULT_FAKE_TWILIO).rstrip("/")
        faults = {"errors": [list(TRANSIENT)] * opts["fail_next"], "invalid_numbers": opts["invalid_number"]}
        if reset:
            faults = {"errors": [], "invalid_numbers": []}
        post(f"{url}/_fake/faults", faults, f"no fake Twilio API answers at {url}: demo_fault works only in "
             "`make run`'s demo mode (no TWILIO_AUTH_TOKEN), or pass --fake-twilio URL")
        if reset:
            self.stdout.write("fake Twilio: no faults")
            return
        for number in opts["invalid_number"]:
            self.stdout.write(f"fake Twilio: sends to {number} now fail with 21211 (not a WhatsApp number): "
                              "a reply that reaches Twilio becomes a dead letter at once")
        if opts["fail_next"]:
            self.stdout.write(f"fake Twilio: the next {opts['fail_next']} sends fail with 503 (transient): "
                              f"retried with backoff; after {settings.SEND_RETRY_MAX} failures a reply becomes a "
                              "dead letter")

    def _sandbox(self, tenant_slug: str, fail_next: int) -> None:
        if settings.SIDECAR_TRANSPORT != "sandbox":
            raise CommandError("the WhatsApp Web session is real (SIDECAR_TRANSPORT=baileys): no faults to switch")
        tenant = Tenant.objects.filter(slug=tenant_slug).first()
        if tenant is None:
            raise CommandError(f"no tenant {tenant_slug!r}")
        try:
            sidecar = sidecar_for(tenant)
            response = sidecar.sandbox_behavior(tenant_slug, failSends=fail_next)
        except (SidecarUnavailable, requests.RequestException) as exc:
            raise CommandError(f"the tenant's sidecar does not answer ({exc}): is `make run` running?") from exc
        if response.status_code != 200:
            raise CommandError(f"{sidecar.base} answered {response.status_code}: {response.text[:200]}")
        if fail_next:
            self.stdout.write(f"sandbox WhatsApp Web ({tenant_slug}): the next {fail_next} sends fail (transient); "
                              "replies fail over to Twilio after the retries")
        else:
            self.stdout.write(f"sandbox WhatsApp Web ({tenant_slug}): no faults")


def post(url: str, payload: dict, unreachable: str) -> None:
    try:
        response = requests.post(url, json=payload, timeout=5)
    except requests.RequestException as exc:
        raise CommandError(unreachable) from exc
    if response.status_code != 200:
        raise CommandError(f"{url} answered {response.status_code}: {response.text[:200]}")
