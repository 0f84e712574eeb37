"""Production settings (DJANGO_ENV=production) as a deployment gets them: Django's own
deployment checks find nothing, plain http is redirected to https (except the probes and
the sidecar's internal webhooks), browsers are told to stay on https (HSTS), and the
cookies travel only over https and are out of reach of scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.paths import ROOT
from tests.support.settings_env import PRODUCTION_SECRETS

HOST = "bot.example.com"
# A key Django's own check accepts (50+ characters, varied); the shared "x" * 50 is not.
STRONG_SECRET_KEY = "q8Vz-3kLp0Rt7Yw2Nc5Hb9Xs4Md6Jf1Ga8Ue3Io7Pl2Kn5Bv0Cx9Zy4Ww"

REQUESTS = """
import json
import django
django.setup()
from django.test import Client

client = Client()
def get(path, **extra):
    r = client.get(path, HTTP_HOST="bot.example.com", **extra)
    return {"status": r.status_code, "location": r.get("Location", ""), "hsts": r.get("Strict-Transport-Security", ""),
            "cookies": {name: {"secure": bool(c["secure"]), "httponly": bool(c["httponly"])}
                        for name, c in r.cookies.items()}}
print(json.dumps({
    "http": get("/admin/login/"),
    "https": get("/admin/login/", secure=True),
    "https_via_proxy": get("/admin/login/", HTTP_X_FORWARDED_PROTO="https"),
    "healthz": get("/healthz"),
    "metrics": get("/metrics", REMOTE_ADDR="127.0.0.1"),
    "sidecar_webhook": get("/webhooks/baileys/acme/"),
}))
"""


def production(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run python with the production settings, every required secret set, and nothing
    from this test run's own environment that could change them."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "TWILIO_", "SIDECAR_", "METRICS_", "TRUST_PROXY", "PUBLIC_BASE"))}
    full = {**clean, **PRODUCTION_SECRETS, "DJANGO_SECRET_KEY": STRONG_SECRET_KEY, "DJANGO_ALLOWED_HOSTS": HOST,
            "DJANGO_SETTINGS_MODULE": "project.settings", **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("proxy", [{}, {"TRUST_PROXY_HEADERS": "true"}])
def test_manage_py_check_deploy_finds_nothing_in_production(proxy):
    result = production("manage.py", "check", "--deploy", "--fail-level", "WARNING", **proxy)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("hosts", ["*", "bot.example.com,*"])
def test_production_refuses_to_answer_for_any_host(hosts):
    result = production("-c", "from django.conf import settings; settings.DEBUG", DJANGO_ALLOWED_HOSTS=hosts)

    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS must not be *" in result.stderr


def served(**env: str) -> dict:
    result = production("-c", REQUESTS, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def answers() -> dict:
    """What a production server answers to a few requests (one process for all)."""
    return served()


def test_production_redirects_http_to_https_and_tells_browsers_to_stay_there(answers):
    assert answers["http"]["status"] == 301
    assert answers["http"]["location"] == f"https://{HOST}/admin/login/"
    assert answers["https"]["status"] == 200
    assert answers["https"]["hsts"] == "max-age=31536000; includeSubDomains; preload"
    # Without TRUST_PROXY_HEADERS a client's X-Forwarded-Proto is not believed.
    assert answers["https_via_proxy"]["status"] == 301


def test_behind_a_trusted_proxy_the_forwarded_scheme_decides_the_redirect():
    answers = served(TRUST_PROXY_HEADERS="true")

    assert answers["https_via_proxy"]["status"] == 200
    assert answers["http"]["status"] == 301


def test_production_cookies_travel_only_over_https_and_scripts_cannot_read_them(answers):
    cookies = answers["https"]["cookies"]

    assert cookies["csrftoken"] == {"secure": True, "httponly": True}
    check = production("-c", "from django.conf import settings as s; "
                             "print(s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY)")
    assert check.stdout.split() == ["True", "True"], check.stderr


def test_probes_and_the_sidecars_internal_webhooks_are_not_redirected(answers):
    assert answers["healthz"]["status"] == 200
    # The sidecar posts over plain http on the internal network (a redirect would lose
    # the POST): its URL answers, here "405 GET not allowed", instead of redirecting.
    assert answers["sidecar_webhook"]["status"] == 405


def test_in_production_metrics_need_the_token_even_from_this_machine(answers):
    assert answers["metrics"]["status"] == 401
