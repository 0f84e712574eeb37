"""Speech to text through an OpenAI-compatible `POST {base}/audio/transcriptions`
(OpenAI, or a self-hosted Whisper server such as faster-whisper-server/speaches or
whisper.cpp's server): multipart form with `file` and `model`, answer `{"text": ...}`.

The key rule is the chat engine's (bots.engines.llm): LLM_API_KEY goes only to
LLM_BASE_URL. TRANSCRIPTION_API_KEY is for TRANSCRIPTION_BASE_URL; when that is unset and
the URL is the LLM's, the LLM key is used; any other URL gets no key at all.

Errors say in words what went wrong, never the server's text (it may quote the key)."""

from __future__ import annotations

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from bots.llm_client import REFUSALS


class TranscriptionError(Exception):
    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


def api_key() -> str:
    if settings.TRANSCRIPTION_API_KEY:
        return settings.TRANSCRIPTION_API_KEY
    if settings.TRANSCRIPTION_BASE_URL.rstrip("/") == settings.LLM_BASE_URL.rstrip("/"):
        return settings.LLM_API_KEY
    return ""


EXTENSIONS = {"audio/ogg": "ogg", "audio/mpeg": "mp3", "audio/mp4": "m4a", "audio/amr": "amr", "audio/aac": "aac",
              "audio/wav": "wav", "audio/webm": "webm"}


@sensitive_variables("headers")
def transcribe(data: bytes, content_type: str) -> str:
    """The text spoken in the audio, or TranscriptionError."""
    url = settings.TRANSCRIPTION_BASE_URL.rstrip("/") + "/audio/transcriptions"
    headers = {"Accept": "application/json"}
    key = api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    # The server recognises the format by the file name's extension.
    filename = f"voice.{EXTENSIONS.get(content_type, 'ogg')}"
    try:
        response = requests.post(
            url, headers=headers, timeout=(5.0, settings.TRANSCRIPTION_TIMEOUT),
            files={"file": (filename, data, content_type)},
            data={"model": settings.TRANSCRIPTION_MODEL, "response_format": "json"},
        )
    except requests.Timeout:
        raise TranscriptionError("the transcription server did not answer in time", transient=True) from None
    except requests.RequestException:
        raise TranscriptionError("could not connect to the transcription server", transient=True) from None
    status = response.status_code
    if status in (408, 409, 429) or status >= 500:
        raise TranscriptionError(f"HTTP {status} from the transcription server", transient=True)
    if status >= 400:
        reason = REFUSALS.get(status, "the transcription server refused the request")
        raise TranscriptionError(f"HTTP {status}: {reason}", transient=False)
    try:
        text = response.json()["text"]
    except (ValueError, KeyError, TypeError):
        raise TranscriptionError("the transcription server's answer had no text", transient=True) from None
    if not isinstance(text, str):
        raise TranscriptionError("the transcription server's answer had no text", transient=True)
    return text.strip()
