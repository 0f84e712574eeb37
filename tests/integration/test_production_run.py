"""The production start, tested: every process of the Procfile under DJANGO_ENV=production
(PostgreSQL, every secret set, JSON logs, METRICS_TOKEN, Flower's login), behind the
committed nginx site, carries a signed Twilio webhook to a reply. The one relaxation is
SIDECAR_SANDBOX_IN_PRODUCTION_FOR_TESTS (the sidecar simulates WhatsApp): nothing else
is loosened."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import time

import pytest
import requests

from tests.fakes.twilio_server import FakeTwilio
from tests.support.database import database_url
from tests.support.nginx_proxy import PUBLIC_HOST, nginx_config, post_through_proxy
from tests.support.paths import ROOT
from tests.support.ports import free_ports
from tests.support.twilio_webhooks import twilio_form
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CUSTOMER = "+15551234567"
HONCHO_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<proc>[\w.]+)\s+\| (?P<text>.*)$")


class Stack:
    def __init__(self, tmp_path, env: dict):
        self.logfile = tmp_path / "honcho.log"
        self.log = open(self.logfile, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "honcho"), "start", "-f", str(ROOT / "Procfile"), "-d", str(ROOT),
             "--no-colour"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def output(self) -> str:
        return self.logfile.read_text()

    def lines(self) -> list[tuple[str, str]]:
        found = []
        for raw in self.output().splitlines():
            match = HONCHO_LINE.match(raw)
            if match and match["proc"] != "system":  # honcho's own "started with pid" lines
                found.append((match["proc"], match["text"]))
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


@pytest.fixture
def fake_twilio():
    """A fake Twilio with a real-looking secret token, as production requires."""
    fake = FakeTwilio(account_sid="AC" + secrets.token_hex(16), auth_token=secrets.token_hex(16)).start()
    yield fake
    fake.stop()


@pytest.fixture
def production(redis_server, fake_twilio, tmp_path, request):
    web_port, flower_port, sidecar_port = free_ports(3)
    secrets_ = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
        "SIDECAR_TOKEN": secrets.token_urlsafe(24),
        "SIDECAR_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "METRICS_TOKEN": secrets.token_urlsafe(24),
        "FLOWER_BASIC_AUTH": f"ops:{secrets.token_urlsafe(12)}",
    }
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "TWILIO_", "SIDECAR_", "LOG_", "PYTEST", "BOT_", "LLM_"))
    }
    env.update(secrets_)
    env.update({
        "PATH": f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        "DJANGO_ENV": "production",
        "DJANGO_ALLOWED_HOSTS": f"{PUBLIC_HOST},127.0.0.1",
        "TRUST_PROXY_HEADERS": "true",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_server.url,
        "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
        "TWILIO_API_BASE_URL": fake_twilio.base_url,
        "PUBLIC_BASE_URL": f"https://{PUBLIC_HOST}",
        "SIDECAR_URL": f"http://127.0.0.1:{sidecar_port}",
        "SIDECAR_TRANSPORT": "sandbox",
        "SIDECAR_SANDBOX_IN_PRODUCTION_FOR_TESTS": "true",
        "SIDECAR_DATA_DIR": str(tmp_path / "sidecar"),
        "SIDECAR_WEBHOOK_BASE": f"http://127.0.0.1:{web_port}",
        "WEB_BIND": f"127.0.0.1:{web_port}",
        "WEB_WORKERS": "2",
        "FLOWER_PORT": str(flower_port),
        "RUN_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "AI_CONCURRENCY": "1",
        "SEND_CONCURRENCY": "1",
        "PYTHONUNBUFFERED": "1",
    })
    (tmp_path / "prometheus").mkdir()
    env["FIELD_ENCRYPTION_KEYS"] = base64.urlsafe_b64encode(os.urandom(32)).decode()  # a Fernet key
    # The deploy steps before a start (docs/DEPLOY.md): static files for the admin.
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "manage.py", "collectstatic", "--no-input", "-v0"],
                   cwd=ROOT, env=env, check=True)
    stack = Stack(tmp_path, env)
    web = f"http://127.0.0.1:{web_port}"

    def ready() -> bool:
        if stack.proc.poll() is not None:
            return True
        try:
            health = requests.get(f"{web}/readyz", timeout=1, headers={"Authorization": f"Bearer {env['METRICS_TOKEN']}"})
            flower = requests.get(f"http://127.0.0.1:{flower_port}/", timeout=1)
            sidecar = requests.get(f"http://127.0.0.1:{sidecar_port}/healthz", timeout=1)
        except requests.RequestException:
            return False
        return health.status_code == 200 and flower.status_code == 401 and sidecar.ok

    try:
        wait_for(ready, 90, interval=0.5, message="the production stack")
        assert stack.proc.poll() is None, stack.output()[-6000:]
        yield {"web": web, "flower": f"http://127.0.0.1:{flower_port}", "env": env, "stack": stack,
               "web_port": web_port}
    finally:
        stack.stop()
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(f"--- {stack.logfile} ---\n{stack.output()[-8000:]}")


def test_a_production_start_answers_a_signed_webhook_through_the_proxy_with_json_logs_and_no_number(
    production, tenant, fake_twilio, tmp_path
):
    http_port, https_port = free_ports(2)
    nginx = subprocess.Popen(
        ["nginx", "-c", str(nginx_config(tmp_path, http_port, https_port, production["web_port"])),
         "-p", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        base = f"https://127.0.0.1:{https_port}"
        wait_for(lambda: _answers(f"{base}/healthz"), 15, message="nginx")
        form = twilio_form(Body="What are your opening hours?", From=f"whatsapp:{CUSTOMER}", WaId=CUSTOMER[1:])
        response = post_through_proxy(base, form, f"https://{PUBLIC_HOST}/webhooks/twilio/acme/",
                                       fake_twilio.auth_token)
        assert response.status_code == 200, response.text

        reply = wait_for(lambda: fake_twilio.sent_to(CUSTOMER), 60,
                         interval=0.2, message="the reply at Twilio")
        assert reply[0]["body"] == tenant.fallback_reply  # the rules engine's answer (no rules yet)
    finally:
        nginx.terminate()
        nginx.wait(10)

    # Ops endpoints refuse strangers.
    assert requests.get(f"{production['web']}/metrics", timeout=5).status_code in (401, 403)
    token = {"Authorization": f"Bearer {production['env']['METRICS_TOKEN']}"}
    assert requests.get(f"{production['web']}/metrics", headers=token, timeout=5).status_code == 200
    assert requests.get(f"{production['flower']}/", timeout=5).status_code == 401

    # Every line every process wrote is JSON, and the customer's number is in none of them.
    time.sleep(1)  # the send worker's last lines
    lines = production["stack"].lines()
    assert len(lines) > 20
    not_json = [(proc, text) for proc, text in lines if not _is_json(text)]
    assert not not_json, f"{len(not_json)} lines are not JSON, e.g. {not_json[:5]}"
    digits = CUSTOMER[1:]
    leaked = [text for _, text in lines if digits in text or digits[-7:] in text]
    assert not leaked, leaked[:3]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, headers={"Host": PUBLIC_HOST}, verify=False, timeout=1).ok
    except requests.RequestException:
        return False


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
