"""A real Django web server for tests: gunicorn on a free port, against the test
database, with the environment the caller gives (as the Procfile's `web` runs it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.paths import ROOT
from tests.support.ports import free_port
from tests.support.waiting import wait_for


@contextmanager
def gunicorn(env: dict, logfile: Path, *options: str) -> Iterator[str]:
    """Run gunicorn with `options` (e.g. "--workers", "2"); yields its base URL."""
    port = free_port()
    log = open(logfile, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{port}", "--access-logfile", "-",
         *options],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/admin/login/", timeout=1).status_code == 200
        except requests.RequestException:
            return proc.poll() is not None

    try:
        wait_for(up, 20, message="the Django server")
        assert proc.poll() is None, logfile.read_text()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # a worker still stuck in a request
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()
