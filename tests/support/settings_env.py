"""Loading the settings in a fresh process with a chosen environment, and the secrets a
production start needs."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.paths import ROOT


def load_settings(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TWILIO_", "SIDECAR_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; from django.conf import settings; settings.DEBUG; print('ok')"],
        cwd=ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "project.settings"}, capture_output=True, text=True,
    )


PRODUCTION_SECRETS = {
    "DJANGO_ENV": "production",
    "DJANGO_SECRET_KEY": "x" * 50,
    "DJANGO_ALLOWED_HOSTS": "bot.example.com",
    "TWILIO_AUTH_TOKEN": "real-token",
    "SIDECAR_TOKEN": "real-sidecar-token",
    "SIDECAR_WEBHOOK_SECRET": "real-webhook-secret",
    "FIELD_ENCRYPTION_KEYS": "aGVyZS1pcy1hLXRlc3QtZmVybmV0LWtleS0zMmJ5dGU=",
}
