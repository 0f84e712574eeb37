"""Voice notes, through a real worker: fetched from the fake Twilio, transcribed by the
fake OpenAI-compatible server (POST /v1/audio/transcriptions, multipart), and answered
from the transcript, which is what the bot reads and memory keeps. A failed or switched
off transcription gets the tenant's non-text answer. A lost media task is re-driven."""

from __future__ import annotations

import pytest

from bots.models import Rule
from bots.transcription import api_key
from tests.support.media import VOICE, media_settings, replies, send_media
from tests.support.waiting import wait_for
from whatsapp.media.models import MediaFile

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

KEY = "sk-whisper-SECRET-77"
NON_TEXT = "Thanks! We can only read text messages here; could you write your question in words?"


@pytest.fixture
def listening(tenant):
    tenant.transcribe_voice_notes = True
    tenant.save()
    Rule.objects.create(tenant=tenant, pattern="deliver", answer="We deliver every day, Sundays too.")
    return tenant


def worker_env(settings, tmp_path, llm, **overrides) -> dict:
    return media_settings(settings, tmp_path, TRANSCRIPTION_BASE_URL=llm.base_url, TRANSCRIPTION_API_KEY=KEY,
                          TRANSCRIPTION_MODEL="whisper-large-v3", **overrides)


def test_a_voice_note_is_answered_from_its_transcript(client, listening, twilio, llm, start_worker, settings,
                                                      tmp_path):
    start_worker(**worker_env(settings, tmp_path, llm))

    message = send_media(client, twilio, VOICE, "audio/ogg")

    answer = wait_for(replies, 30, message="the answer")[0]
    assert answer.body == "We deliver every day, Sundays too."
    media = MediaFile.objects.get(message=message)
    assert (media.transcript_state, media.transcript) == ("done", "do you deliver on sundays")
    message.refresh_from_db()
    assert message.body == "do you deliver on sundays", "the transcript is what the bot and memory read"
    (request,) = llm.transcriptions
    assert request["model"] == "whisper-large-v3" and request["filename"] == "voice.ogg"
    assert request["size"] == len(VOICE)
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"


def test_the_llm_reads_a_voice_note_marked_as_a_transcript(client, listening, twilio, llm, start_worker, settings,
                                                          tmp_path):
    listening.bot_engine = "llm"
    listening.save()
    start_worker(**worker_env(settings, tmp_path, llm, LLM_BASE_URL=llm.base_url))

    send_media(client, twilio, VOICE, "audio/ogg")

    answer = wait_for(replies, 30, message="the answer")[0]
    assert answer.engine == "llm"
    assert llm.bodies()[0]["messages"][-1]["content"] == (
        "[voice note from the customer, transcribed: do you deliver on sundays]")


def test_a_failing_transcription_gets_the_polite_non_text_answer(client, listening, twilio, llm, start_worker,
                                                                 settings, tmp_path):
    llm.fail_always = "503"
    start_worker(**worker_env(settings, tmp_path, llm, MEDIA_FETCH_RETRIES=1))

    message = send_media(client, twilio, VOICE, "audio/ogg")

    assert wait_for(replies, 30, message="the answer")[0].body == NON_TEXT
    media = MediaFile.objects.get(message=message)
    assert (media.state, media.transcript_state) == ("stored", "failed"), "the recording is kept for staff"
    assert "HTTP 503" in media.transcript_error
    assert len(llm.transcriptions) == 2


def test_a_tenant_without_transcription_sends_no_recording_anywhere(client, tenant, twilio, llm, start_worker,
                                                                    settings, tmp_path):
    start_worker(**worker_env(settings, tmp_path, llm))

    message = send_media(client, twilio, VOICE, "audio/ogg")

    assert wait_for(replies, 30, message="the answer")[0].body == NON_TEXT
    assert MediaFile.objects.get(message=message).transcript_state == "off"
    assert llm.transcriptions == []


def test_a_lost_media_task_is_redriven_by_the_reconciler(client, listening, twilio, llm, redis_server, start_worker,
                                                         settings, tmp_path):
    env = worker_env(settings, tmp_path, llm)
    message = send_media(client, twilio, VOICE, "audio/ogg")
    redis_server.client().flushall()  # the media task is lost with the broker's contents

    start_worker(beat=True, RECONCILE_INTERVAL_SECONDS=1, RECONCILE_GRACE_SECONDS=1, **env)

    assert wait_for(replies, 40, message="the answer")[0].body == "We deliver every day, Sundays too."
    assert MediaFile.objects.get(message=message).transcript == "do you deliver on sundays"


def test_the_llm_key_goes_only_to_the_llm_url(settings):
    settings.LLM_BASE_URL, settings.LLM_API_KEY = "https://api.openai.com/v1", "sk-llm"
    settings.TRANSCRIPTION_API_KEY = ""
    settings.TRANSCRIPTION_BASE_URL = "https://api.openai.com/v1/"
    assert api_key() == "sk-llm"
    settings.TRANSCRIPTION_BASE_URL = "http://whisper.lan:8000/v1"
    assert api_key() == "", "a self-hosted server gets no key unless TRANSCRIPTION_API_KEY is set"
    settings.TRANSCRIPTION_API_KEY = "sk-whisper"
    assert api_key() == "sk-whisper"
