"""deploy/: the systemd units are the Procfile's, and the nginx configuration in front of a
real gunicorn keeps Twilio's signatures valid, ops endpoints private and bodies bounded."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import urllib3

from tests.support.nginx_proxy import DEPLOY, PUBLIC_HOST, nginx_config, post_through_proxy
from tests.support.paths import ROOT
from tests.support.ports import free_ports
from tests.support.sidecar import worker_env
from tests.support.twilio_webhooks import twilio_form
from tests.support.waiting import wait_for

# --- systemd units -------------------------------------------------------------------

def test_the_committed_systemd_units_are_exactly_what_make_units_generates_from_the_procfile(tmp_path):
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "honcho"), "export", "systemd", str(tmp_path / "units"),
         "-f", str(ROOT / "Procfile"), "-t", str(DEPLOY / "systemd" / "templates"),
         "-a", "whatsapp", "-d", "/srv/whatsapp", "-u", "whatsapp", "-s", "/bin/sh", "-e", "/dev/null"],
        check=True, capture_output=True,
    )
    committed = DEPLOY / "systemd" / "units"
    diff = filecmp.dircmp(committed, tmp_path / "units")
    assert not (diff.left_only or diff.right_only), "units and Procfile disagree: run `make units`"
    _, mismatch, errors = filecmp.cmpfiles(committed, tmp_path / "units", diff.common_files, shallow=False)
    assert not mismatch and not errors, f"stale units {mismatch}: run `make units`"


def test_every_procfile_process_has_a_unit_that_restarts_forever_and_kills_its_whole_tree():
    names = [line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line]
    assert names
    for name in names:
        unit = (DEPLOY / "systemd" / "units" / f"whatsapp-{name}-1.service").read_text()
        assert "Restart=always" in unit
        assert "StartLimitIntervalSec=0" in unit  # systemd never gives up on it
        assert "KillMode=mixed" in unit  # no orphan sidecar after a stop
        assert "EnvironmentFile=/etc/whatsapp/env" in unit
        assert "%h" not in unit.replace("%%h", "")  # celery's %h, not systemd's home directory


# --- nginx in front of gunicorn ------------------------------------------------------

@pytest.fixture
def proxied_web(transactional_db, redis_server, tmp_path):
    """A real gunicorn trusting the proxy's headers, behind the committed nginx site."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is missing: scripts/test.sh installs Debian's nginx-light")
    web_port, http_port, https_port = free_ports(3)
    env = worker_env(redis_server.url, TRUST_PROXY_HEADERS="true", PUBLIC_BASE_URL="")
    web_log = open(tmp_path / "web.log", "w")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{web_port}", "--workers", "1"],
        cwd=ROOT, env=env, stdout=web_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    config = nginx_config(tmp_path, http_port, https_port, web_port)
    proxy = subprocess.Popen([nginx, "-c", str(config), "-p", str(tmp_path)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT, start_new_session=True)
    base = f"https://127.0.0.1:{https_port}"
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def up() -> bool:
        try:
            return requests.get(f"{base}/healthz", headers={"Host": PUBLIC_HOST}, verify=False, timeout=1).ok
        except requests.RequestException:
            return web.poll() is not None or proxy.poll() is not None

    try:
        wait_for(up, 20, message="gunicorn behind nginx")
        assert web.poll() is None, (tmp_path / "web.log").read_text()
        assert proxy.poll() is None, (tmp_path / "error.log").read_text()
        yield {"https": base, "http": f"http://127.0.0.1:{http_port}"}
    finally:
        for proc in (proxy, web):
            proc.terminate()
            proc.wait(10)
        web_log.close()


def test_a_twilio_webhook_signed_for_the_public_https_url_validates_through_the_proxy(proxied_web, tenant):
    from whatsapp.models import Message

    form = twilio_form(Body="hello through nginx")
    response = post_through_proxy(proxied_web["https"], form, f"https://{PUBLIC_HOST}/webhooks/twilio/acme/")

    assert response.status_code == 200, response.text
    assert Message.objects.filter(provider_message_id=form["MessageSid"], body="hello through nginx").exists()


def test_the_proxy_overwrites_forwarded_headers_so_a_client_cannot_choose_the_signed_url(proxied_web, tenant):
    from whatsapp.models import Message

    form = twilio_form()
    # Signed for the attacker's host and sent with it in X-Forwarded-Host: nginx replaces it.
    response = post_through_proxy(proxied_web["https"], form, "https://evil.example/webhooks/twilio/acme/",
                                   **{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})

    assert response.status_code == 403
    assert not Message.objects.filter(provider_message_id=form["MessageSid"]).exists()


def test_the_proxy_keeps_metrics_private_refuses_large_bodies_and_redirects_plain_http(proxied_web, tenant):
    https = proxied_web["https"]
    host = {"Host": PUBLIC_HOST}

    assert requests.get(f"{https}/metrics", headers=host, verify=False, timeout=5).status_code == 404
    assert requests.get(f"{https}/flower/", headers=host, verify=False, timeout=5).status_code == 404
    big = twilio_form(Body="x" * 70_000)
    assert post_through_proxy(https, big, f"https://{PUBLIC_HOST}/webhooks/twilio/acme/").status_code == 413
    plain = requests.get(f"{proxied_web['http']}/admin/", headers=host, timeout=5, allow_redirects=False)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://{PUBLIC_HOST}/admin/"
