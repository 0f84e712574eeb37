"""Photos, through a real worker: a tenant whose model accepts images sends the photo to
the LLM as image content (a base64 data URL part, OpenAI's wire format) with its
caption; a tenant whose model does not gets the non-text answer; the rules engine
matches captions; a photo and a text sent within the debounce window get one answer."""

from __future__ import annotations

import base64
import time

import pytest

from bots.models import Rule
from tests.support.media import JPEG, PATH, media_settings, replies, send_media
from tests.support.twilio_webhooks import post_twilio, twilio_form
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NON_TEXT = "Thanks! We can only read text messages here; could you write your question in words?"
PHOTO_PART = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()}}


@pytest.fixture
def seeing(tenant):
    tenant.bot_engine = "llm"
    tenant.llm_accepts_images = True
    tenant.save()
    return tenant


def test_a_photo_with_a_caption_reaches_the_model_as_image_content(client, seeing, twilio, llm, start_worker,
                                                                   settings, tmp_path):
    start_worker(**media_settings(settings, tmp_path, LLM_BASE_URL=llm.base_url))

    send_media(client, twilio, JPEG, "image/jpeg", body="is this cake gluten-free?")

    answer = wait_for(replies, 30, message="the answer")[0]
    assert llm.bodies()[0]["messages"][-1] == {"role": "user", "content": [
        {"type": "text", "text": "[image from the customer: is this cake gluten-free?]"}, PHOTO_PART]}
    assert (answer.engine, answer.body) == ("llm", "LLM answer to: [1 image] [image from the customer: is this "
                                                   "cake gluten-free?]")


def test_a_photo_alone_is_shown_to_a_model_that_sees_images(client, seeing, twilio, llm, start_worker, settings,
                                                            tmp_path):
    start_worker(**media_settings(settings, tmp_path, LLM_BASE_URL=llm.base_url))

    send_media(client, twilio, JPEG, "image/jpeg")

    assert wait_for(replies, 30, message="the answer")[0].engine == "llm"
    assert llm.bodies()[0]["messages"][-1]["content"][1] == PHOTO_PART


def test_a_photo_alone_gets_the_non_text_answer_when_the_model_sees_no_images(client, tenant, twilio, llm,
                                                                              start_worker, settings, tmp_path):
    tenant.bot_engine = "llm"
    tenant.save()
    start_worker(**media_settings(settings, tmp_path, LLM_BASE_URL=llm.base_url))

    send_media(client, twilio, JPEG, "image/jpeg")

    assert wait_for(replies, 30, message="the answer")[0].body == NON_TEXT
    assert llm.bodies() == []


def test_the_rules_engine_matches_a_caption(client, tenant, twilio, start_worker, settings, tmp_path):
    Rule.objects.create(tenant=tenant, pattern="chocolate", answer="Yes, every cake comes in chocolate too.")
    start_worker(**media_settings(settings, tmp_path))

    send_media(client, twilio, JPEG, "image/jpeg", body="Do you have this one in chocolate?")

    assert wait_for(replies, 30, message="the answer")[0].body == "Yes, every cake comes in chocolate too."


def test_a_photo_and_a_question_in_one_burst_get_one_answer_considering_both(client, seeing, twilio, llm,
                                                                             start_worker, settings, tmp_path):
    seeing.debounce_seconds = 1.5
    seeing.save()
    start_worker(**media_settings(settings, tmp_path, LLM_BASE_URL=llm.base_url))

    send_media(client, twilio, JPEG, "image/jpeg")
    assert post_twilio(client, PATH, twilio_form(Body="how much is this one?")).status_code == 200

    answer = wait_for(replies, 30, message="the answer")[0]
    time.sleep(2)  # any second answer would be stored by now
    assert len(replies()) == 1
    # The media task hands the burst to the bot as the question's own task comes due: two
    # runs may generate at once (bots.tasks), and only one stores; each saw both messages.
    requests = llm.bodies()
    assert requests and all(request["messages"][-1]["content"] == [
        {"type": "text", "text": "[image from the customer]\nhow much is this one?"}, PHOTO_PART] for request in requests)
    assert answer.engine == "llm"
