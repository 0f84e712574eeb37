"""The fakes are at least as strict as the services they stand for: Twilio's protected
media and its storage URLs, and OpenAI's transcription endpoint."""

from __future__ import annotations

import requests
from django.conf import settings

from tests.support.media import JPEG, VOICE


def test_twilio_media_needs_the_account_credentials(twilio):
    url = twilio.add_media(JPEG, "image/jpeg")

    assert requests.get(url, timeout=5).status_code == 401
    redirect = requests.get(url, auth=(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN), timeout=5,
                            allow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["Location"].startswith("http://localhost:")


def test_the_storage_url_refuses_credentials_an_expired_or_altered_signature(twilio):
    sid = twilio.add_media(JPEG, "image/jpeg").rsplit("/", 1)[-1]
    fresh = twilio.storage_url(sid)

    assert requests.get(fresh, auth=("AC", "token"), timeout=5).status_code == 400
    assert requests.get(fresh.replace("Signature=", "Signature=0"), timeout=5).status_code == 403
    twilio.faults.media_expired_next = 1
    assert requests.get(twilio.storage_url(sid), timeout=5).status_code == 403
    ok = requests.get(fresh, timeout=5)
    assert (ok.status_code, ok.content, ok.headers["Content-Type"]) == (200, JPEG, "image/jpeg")


def test_the_transcription_endpoint_refuses_what_openai_refuses(llm):
    url = f"{llm.base_url}/audio/transcriptions"

    assert requests.post(url, data={"model": "whisper-1"}, timeout=5).status_code == 400  # not multipart
    assert requests.post(url, files={"file": ("voice.ogg", VOICE)}, timeout=5).status_code == 400  # no model
    unknown = requests.post(url, files={"file": ("voice.xyz", VOICE)}, data={"model": "whisper-1"}, timeout=5)
    assert unknown.status_code == 400 and "Invalid file format" in unknown.json()["error"]["message"]
    ok = requests.post(url, files={"file": ("voice.ogg", VOICE)}, data={"model": "whisper-1"}, timeout=5)
    assert ok.json() == {"text": "do you deliver on sundays"}
