"""The restore drill of docs/DEPLOY.md, on real parts: a paired WhatsApp Web session and the
database are backed up with deploy/backup.sh, the host loses its sidecar data, and
deploy/restore.sh brings the session back paired (no QR code to scan) and the database
back whole."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import psycopg
import pytest

from tests.support.baileys import connect
from tests.support.database import database_url
from tests.support.paths import ROOT
from tests.support.waiting import wait_for
from whatsapp.models import SessionState

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scratch_database():
    """An empty database on the same server: the new host's."""
    if not database_url().startswith("postgres"):
        pytest.fail("the restore drill needs PostgreSQL (pg_dump/pg_restore)")
    name = f"restore_drill_{uuid.uuid4().hex[:8]}"
    admin = database_url().rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield database_url().rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(script: str, *args: str, **env: str) -> str:
    result = subprocess.run([str(ROOT / "deploy" / script), *args], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_restored_backup_brings_the_session_back_paired_and_the_database_whole(
    baileys_tenant, sandbox, lifecycle_worker, tmp_path, scratch_database  # noqa: F811
):
    data_dir = tmp_path / "sidecar-data"  # the lifecycle_worker fixture's SIDECAR_DATA_DIR
    worker = lifecycle_worker()
    connect("acme")
    assert sandbox.status("acme")["authPaired"]

    dump, tarball = _run("backup.sh", str(tmp_path / "backups"), DATABASE_URL=database_url(),
                         SIDECAR_DATA_DIR=str(data_dir)).split()

    # The host is lost: the lifecycle worker and everything on its disk.
    worker.stop()
    shutil.rmtree(data_dir)

    _run("restore.sh", dump, tarball, DATABASE_URL=scratch_database, SIDECAR_DATA_DIR=str(data_dir))

    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("select slug, baileys_enabled from whatsapp_tenant").fetchall() == [("acme", True)]
    lifecycle_worker()
    # An unpaired session would now show a QR code forever: only restored credentials connect.
    sandbox.http.post(f"{sandbox.base}/sandbox/acme/behavior", json={"pairing": "never"}, timeout=5)
    SessionState.objects.filter(tenant__slug="acme").update(status="stopped", connected=False, can_send=False)
    connect("acme")
    status = wait_for(lambda: (s := sandbox.status("acme")).get("connected") and s, 20, message="the session")
    assert status["authPaired"] is True
    assert not status.get("qr")
