"""Fixtures that start real processes: the suite's own redis-server, Celery workers, the
sidecar (started by the lifecycle worker) with a real Django server for its webhooks, and
a browser. Every test under tests/integration/ gets the `integration` marker, so
`pytest -m "not integration"` runs the unit tests alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from tests.support.baileys import HOURS_ANSWER
from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.database import database_url
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.sidecar import SIDECAR_DIR, Sandbox, worker_env
from tests.support.waiting import wait_for
from tests.support.web_server import gunicorn
from tests.support.workers import Worker

HERE = Path(__file__).resolve().parent


def pytest_itemcollected(item):
    if HERE in Path(str(item.path)).resolve().parents:
        item.add_marker(pytest.mark.integration)


# --- Redis and Celery workers --------------------------------------------------------

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
def _clean_redis(request):
    """Each test starts with an empty broker and closed breakers."""
    if "redis_server" in request.fixturenames or "worker" in request.fixturenames:
        server = request.getfixturevalue("redis_server")
        server.client().flushall()
        from whatsapp.outbound import breakers

        breakers._breakers.clear()
    yield


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


# --- The sidecar (sandbox transport) and a real Django server for its webhooks -------

@pytest.fixture
def sandbox(settings) -> Sandbox:
    """A free port for the sidecar; this process and every worker started after this
    fixture point SIDECAR_URL at it."""
    if not (SIDECAR_DIR / "node_modules").exists():
        pytest.fail("whatsapp/sidecar/node_modules is missing: run `make sidecar-deps`")
    settings.SIDECAR_URL = f"http://127.0.0.1:{free_port()}"
    return Sandbox(settings.SIDECAR_URL, settings.SIDECAR_TOKEN)


@pytest.fixture
def live_django(redis_server, sandbox, tmp_path, request):
    """A real Django server (gunicorn) on a free port against the test database, with
    the same environment as the workers: the sidecar posts its webhooks here."""
    logfile = tmp_path / "web.log"
    with gunicorn(worker_env(redis_server.url), logfile, "--workers", "1", "--threads", "4") as url:
        yield url
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(f"--- {logfile} ---\n{Path(logfile).read_text()[-4000:]}")


@pytest.fixture
def lifecycle_worker(start_worker, live_django, sandbox, tmp_path):
    """Start the lifecycle worker (queue `baileys`, concurrency 1, with beat) as the
    Procfile does; it takes the lease and runs the sidecar in sandbox mode."""

    def start(wait_ready: bool = True, **overrides):
        env = {
            "SIDECAR_TRANSPORT": "sandbox",
            "SIDECAR_DATA_DIR": tmp_path / "sidecar-data",
            "SIDECAR_WEBHOOK_BASE": live_django,
            "SIDECAR_WEBHOOK_SECRET": settings.SIDECAR_WEBHOOK_SECRET,
            "SIDECAR_RETRY_BASE_MS": 200,
            "SESSION_HEALTH_INTERVAL_SECONDS": 1,
            **overrides,
        }
        worker = start_worker(queues="baileys", concurrency=1, beat=True, wait_ready=wait_ready, **env)
        if wait_ready:
            wait_for(sandbox.healthy, 15, message="the sidecar started by the lifecycle worker")
        return worker

    return start


@pytest.fixture
def baileys_tenant(tenant):
    """The tenant with Baileys on and one rule, so a message through the sidecar is answered."""
    from bots.models import Rule

    tenant.baileys_enabled = True
    tenant.save()
    Rule.objects.create(tenant=tenant, pattern="hours, open", answer=HOURS_ANSWER)
    return tenant


# --- A browser -----------------------------------------------------------------------

@pytest.fixture
def page(transactional_db, live_server, monkeypatch):
    """A fresh browser page; the browser is closed after the test. (The test database is
    set up before the live server starts, so the server, holding connections, stops first.)"""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread, which makes Django refuse
    # the test's own ORM calls. The site itself runs in the live server's thread, and
    # nothing here is concurrent, so the check guards against nothing in this test.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()
            # ORM calls made while Playwright ran got database connections of their own
            # (Django keys them by async context); close them, or the test database
            # cannot be dropped at the end of the session.
            connections.close_all()
