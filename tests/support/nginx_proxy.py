"""The committed nginx site (deploy/nginx) run on loopback ports with a throwaway
certificate, and posting a signed Twilio webhook through it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import requests

from tests.support.paths import ROOT
from tests.support.twilio_webhooks import twilio_signature

DEPLOY = ROOT / "deploy"
PUBLIC_HOST = "whatsapp.example.com"


def nginx_config(tmp_path: Path, http_port: int, https_port: int, web_port: int) -> Path:
    """The committed configuration, moved to free loopback ports and a throwaway certificate."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={PUBLIC_HOST}",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )
    snippet = tmp_path / "whatsapp-proxy.conf"
    shutil.copy(DEPLOY / "nginx" / "whatsapp-proxy.conf", snippet)
    site = (DEPLOY / "nginx" / "whatsapp.conf").read_text()
    replacements = {
        "    listen [::]:80;\n": "",
        "    listen [::]:443 ssl http2;\n": "",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl;",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{web_port};",
        f"/etc/letsencrypt/live/{PUBLIC_HOST}/fullchain.pem": str(tmp_path / "cert.pem"),
        f"/etc/letsencrypt/live/{PUBLIC_HOST}/privkey.pem": str(tmp_path / "key.pem"),
        "/etc/nginx/snippets/whatsapp-proxy.conf": str(snippet),
    }
    for old, new in replacements.items():
        assert old in site, f"deploy/nginx/whatsapp.conf no longer contains {old!r}"
        site = site.replace(old, new)
    (tmp_path / "site.conf").write_text(site)
    main = tmp_path / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    main.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events {}\nhttp {\n"
        f"  access_log {tmp_path}/access.log;\n"
        + "".join(f"  {kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + f"  include {tmp_path}/site.conf;\n}}\n"
    )
    return main


def post_through_proxy(base: str, form: dict, signed_url: str, token: str | None = None,
                        **headers) -> requests.Response:
    return requests.post(
        f"{base}/webhooks/twilio/acme/", data=urlencode(form), verify=False, timeout=5, allow_redirects=False,
        headers={"Host": PUBLIC_HOST, "Content-Type": "application/x-www-form-urlencoded",
                 "X-Twilio-Signature": twilio_signature(signed_url, form, token), **headers},
    )
