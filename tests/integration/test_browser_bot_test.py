"""The "test the bot" page in a real browser: the answer comes from a real `ai` worker
and the page shows it by itself (it polls), with no front-end build step."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.support.browser import PASSWORD, assert_styled, log_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_page_shows_the_answer_by_itself_once_the_worker_has_it(page, tenant, fake_llm,  # noqa: F811
                                                                    start_worker, tmp_path):
    fake_llm.reset()
    fake_llm.delay_seconds = 1.5  # long enough to see the page wait
    tenant.bot_engine = "llm"
    tenant.save()
    start_worker("ai", 1, LLM_BASE_URL=fake_llm.base_url)
    boss = User.objects.create_superuser("boss", password=PASSWORD)

    log_in(page, boss)
    page.goto(f"/admin/whatsapp/tenant/{tenant.pk}/change/")
    page.click("text=Send a test question")
    page.fill("#id_question", "Do you bake on Fridays?")
    page.click("input[value='Ask the bot']")

    assert "Waiting for the answer" in page.inner_text("#content")
    page.screenshot(path=tmp_path / "bot-test-waiting.png", full_page=True)
    page.wait_for_selector("#bot-answer", timeout=20_000)
    assert page.inner_text("#bot-answer") == "LLM answer to: Do you bake on Fridays?"
    assert page.inner_text("#bot-engine") == "llm"
    assert page.input_value("#id_question") == "Do you bake on Fridays?"
    assert_styled(page)
    page.screenshot(path=tmp_path / "bot-test-answer.png", full_page=True)
