"""Fixtures shared by unit and integration tests: the fake Twilio and LLM APIs (local
servers in this process), a tenant, no debounce wait. Fixtures that start processes
(Redis, Celery workers, the sidecar, gunicorn, a browser) are in
tests/integration/conftest.py; importable helpers are in tests/support/."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.fakes.llm_server import FakeLLM
from tests.fakes.twilio_server import FakeTwilio


@pytest.fixture(autouse=True)
def _answer_at_once(settings):
    """No debounce wait unless a test sets one on its tenant (the web side schedules it)."""
    settings.BOT_DEBOUNCE_SECONDS = 0


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """item.rep_call: fixtures print their processes' logs when the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def tenant(db):
    from whatsapp.models import Tenant

    return Tenant.objects.create(slug="acme", name="Acme Bakery", twilio_number="+14155238886")


@pytest.fixture
def staff_client(client, db):
    """The test client logged in as Sam, staff with the inbox permission only."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("sam", password="pw", is_staff=True, first_name="Sam")
    user.user_permissions.add(Permission.objects.get(codename="use_inbox"))
    client.force_login(user)
    return client
