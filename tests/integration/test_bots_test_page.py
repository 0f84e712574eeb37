"""The admin's "test the bot" page: the question is answered by an `ai` worker and the
page polls for it, so a model that hangs never holds a web worker (issue 17), and the
page shows what went wrong in words, never the model server's own text (issue 11)."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from urllib.parse import urlencode

import pytest
import requests
from django.test import Client

from bots.tasks import answer_trial
from tests.support.database import database_url
from tests.support.ports import free_port
from tests.support.twilio_webhooks import twilio_form, twilio_signature
from tests.support.waiting import wait_for
from tests.support.web_server import gunicorn
from whatsapp.models import Contact, Message

KEY = "sk-test-SECRET-page"


@pytest.fixture
def shop(tenant, llm, settings):
    settings.LLM_API_KEY = KEY
    settings.LLM_TIMEOUT, settings.LLM_DEADLINE = 0.5, 2.0
    tenant.bot_engine = "llm"
    tenant.system_prompt = "You are the assistant of Acme Bakery."
    tenant.fallback_reply = "Someone will answer soon."
    tenant.save()
    return tenant


def run_queued_trial(redis_server) -> None:
    """Do what an `ai` worker does: take the queued task off the `ai` queue and run it."""
    raw = redis_server.client().rpop("ai")
    assert raw, "the page queued no task on the ai queue"
    message = json.loads(raw)
    assert message["headers"]["task"] == "bots.tasks.answer_trial"
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    answer_trial(*args, **kwargs)


def ask(admin_client, tenant, **form) -> str:
    """Send the question; the URL of the page that shows its answer."""
    response = admin_client.post(f"/admin/whatsapp/tenant/{tenant.pk}/bot-test/", form)
    assert response.status_code == 302, response.content.decode()[:500]
    return response.url


pytestmark = pytest.mark.django_db


def test_staff_ask_the_bot_a_test_question_and_nothing_is_stored_or_sent(admin_client, shop, llm, redis_server):
    page = admin_client.get(f"/admin/whatsapp/tenant/{shop.pk}/change/")
    assert f"/admin/whatsapp/tenant/{shop.pk}/bot-test/" in page.content.decode()

    url = ask(admin_client, shop, question="Open on Friday?")
    assert "Waiting for the answer" in admin_client.get(url).content.decode()
    assert admin_client.get(url + "result.json").json()["status"] == "pending"
    run_queued_trial(redis_server)

    state = admin_client.get(url + "result.json").json()
    assert (state["status"], state["engine"], state["text"]) == ("done", "llm", "LLM answer to: Open on Friday?")
    html = admin_client.get(url).content.decode()
    assert "LLM answer to: Open on Friday?" in html and '<strong id="bot-engine">llm</strong>' in html
    assert llm.bodies()[0]["messages"][0]["content"].startswith("You are the assistant of Acme Bakery.")
    assert Message.objects.count() == 0 and Contact.objects.count() == 0


@pytest.mark.parametrize(("fault", "words", "foreign"), [
    ("401", "HTTP 401: the API key was refused", "Incorrect API key provided"),
    ("garbage", "was not a usable completion", "502 Bad Gateway"),
    ("500", "HTTP 500 from the model server", "The server had an error"),
])
def test_the_page_says_in_words_why_the_model_failed_and_never_shows_its_text(
        admin_client, shop, llm, redis_server, fault, words, foreign):
    llm.fail_always = fault

    url = ask(admin_client, shop, question="do you deliver?")
    run_queued_trial(redis_server)

    html = admin_client.get(url).content.decode()
    assert "Someone will answer soon." in html and '<strong id="bot-engine">fallback</strong>' in html
    assert words in html
    assert foreign not in html and foreign not in json.dumps(admin_client.get(url + "result.json").json())


def test_staff_can_try_another_engine_before_switching(admin_client, tenant, llm, redis_server):
    url = ask(admin_client, tenant, question="hi there", engine="llm")
    run_queued_trial(redis_server)
    assert "LLM answer to: hi there" in admin_client.get(url).content.decode()


def test_staff_without_change_permission_cannot_ask_or_read_answers(admin_client, client, shop, redis_server,
                                                                   django_user_model):
    url = ask(admin_client, shop, question="hi")
    viewer = django_user_model.objects.create_user("viewer", password="pw-123456789", is_staff=True)
    client.force_login(viewer)

    assert client.post(f"/admin/whatsapp/tenant/{shop.pk}/bot-test/", {"question": "hi"}).status_code == 403
    assert client.get(url + "result.json").status_code == 403
    assert redis_server.client().llen("ai") == 1, "only the superuser's question was queued"


def test_an_answer_is_shown_only_under_its_own_tenant(admin_client, shop, redis_server):
    from whatsapp.models import Tenant

    other = Tenant.objects.create(slug="other", name="Other")
    url = ask(admin_client, shop, question="hi")
    assert admin_client.get(url.replace(f"/tenant/{shop.pk}/", f"/tenant/{other.pk}/") + "result.json").status_code == 404


def test_a_question_no_worker_takes_up_is_reported_instead_of_waiting_forever(admin_client, shop, redis_server):
    url = ask(admin_client, shop, question="hi")
    key = next(iter(redis_server.client().scan_iter("bots:trial:*")))
    state = json.loads(redis_server.client().get(key))
    state["started"] -= 2.0 + 31  # LLM_DEADLINE and the grace for the queue have passed
    redis_server.client().set(key, json.dumps(state))

    assert admin_client.get(url + "result.json").json()["status"] == "lost"
    assert "is an <code>ai</code> worker running?" in admin_client.get(url).content.decode()


def test_with_redis_down_the_page_says_so_instead_of_failing(admin_client, shop, redis_server, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    response = admin_client.post(f"/admin/whatsapp/tenant/{shop.pk}/bot-test/", {"question": "hi"}, follow=True)

    assert response.status_code == 200
    assert "could not be queued: the task queue (Redis) is unreachable" in response.content.decode()
    assert redis_server.client().llen("ai") == 0


# --- Two hanging tests do not stop customers' webhooks -----------------------------------

@pytest.fixture
def web(redis_server, fake_llm, tmp_path):
    """The web as the Procfile runs it: gunicorn, 2 sync workers, its default 30 s timeout."""
    env = {**os.environ, "DJANGO_ENV": "test", "DATABASE_URL": database_url(), "REDIS_URL": redis_server.url,
           "LLM_BASE_URL": fake_llm.base_url, "BOT_DEBOUNCE_SECONDS": "0", "PYTHONUNBUFFERED": "1"}
    with gunicorn(env, tmp_path / "web.log", "--workers", "2") as url:
        yield url


def staff_session(base: str, user) -> requests.Session:
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    return session


def ask_over_http(session: requests.Session, base: str, tenant, question: str, outcome: dict) -> None:
    page = session.get(f"{base}/admin/whatsapp/tenant/{tenant.pk}/bot-test/", timeout=5)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    started = time.monotonic()
    try:
        response = session.post(f"{base}/admin/whatsapp/tenant/{tenant.pk}/bot-test/", timeout=60,
                                data={"csrfmiddlewaretoken": token, "question": question},
                                headers={"Referer": page.url}, allow_redirects=False)
        outcome.update(status=response.status_code, location=response.headers.get("Location", ""))
    except requests.RequestException as exc:
        outcome.update(status=type(exc).__name__)
    outcome["took"] = time.monotonic() - started


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_webhook_is_answered_at_once_while_two_staff_test_a_hanging_model(
        web, tenant, fake_llm, start_worker, django_user_model):
    fake_llm.reset()
    fake_llm.fail_always, fake_llm.hang_seconds = "hang", 20
    tenant.bot_engine = "llm"
    tenant.save()
    start_worker("ai", 2, LLM_BASE_URL=fake_llm.base_url, LLM_TIMEOUT=4, LLM_DEADLINE=4)
    staff = [django_user_model.objects.create_superuser(f"staff{i}", password="pw-123456789") for i in (1, 2)]

    outcomes = [{}, {}]
    askers = [threading.Thread(target=ask_over_http, args=(staff_session(web, user), web, tenant, "open?", outcome))
              for user, outcome in zip(staff, outcomes, strict=True)]
    for asker in askers:
        asker.start()
    wait_for(lambda: len(fake_llm.requests) >= 2, 20, message="both test questions to reach the hanging model")

    form = twilio_form(Body="Are you open today?")
    path = f"/webhooks/twilio/{tenant.slug}/"
    started = time.monotonic()
    webhook = requests.post(f"{web}{path}", data=urlencode(form), timeout=10, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": twilio_signature(web + path, form)})
    took = time.monotonic() - started

    assert webhook.status_code == 200 and took < 2.0, f"the webhook took {took:.1f}s"
    for asker in askers:
        asker.join(60)
    assert [o["status"] for o in outcomes] == [302, 302] and all(o["took"] < 2.0 for o in outcomes), outcomes
    # Each page then shows the fallback and why, once the worker gives up on the model.
    session = staff_session(web, staff[0])
    for outcome in outcomes:
        result = outcome["location"] + "result.json"
        state = wait_for(lambda r=result: (s := session.get(f"{web}{r}", timeout=5).json())["status"] != "pending"
                         and s, 30, message="the test answer")
        assert state["engine"] == "fallback"
        assert "the model server did not answer in time" in state["error"]
