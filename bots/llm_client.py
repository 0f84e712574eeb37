"""One call to an OpenAI-compatible Chat Completions API (OpenAI, Ollama, vLLM, LM Studio,
OpenRouter...), retried within a total deadline.

Retried: timeouts and connection errors, 408, 409, 429 (honouring Retry-After), 5xx, and a
200 whose body is not a usable completion. Not retried: other 4xx (a wrong key or model
name does not fix itself). When the deadline would be passed, LLMError is raised and the
caller falls back to the rules engine, so the customer still gets an answer.

The API key travels only in the Authorization header; it is never logged, and no error
message built here contains it.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests

from bots.engines.base import EngineError

log = logging.getLogger("bots.llm")

RETRY_STATUSES = {408, 409, 429}
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
CONNECT_TIMEOUT = 5.0


class LLMError(EngineError):
    """The model gave no usable answer within the deadline."""


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    api_key: str
    model: str
    temperature: float
    max_tokens: int
    timeout: float  # per HTTP request (read timeout)
    deadline: float  # all attempts together, seconds

    def __repr__(self) -> str:  # never print the key, even in a traceback or a debugger
        return f"LLMConfig(base_url={self.base_url!r}, model={self.model!r}, api_key={'set' if self.api_key else 'unset'})"


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def chat_completion(config: LLMConfig, messages: list[dict], session: requests.Session | None = None) -> str:
    """The assistant's answer text for `messages`, or LLMError."""
    url = config.base_url.rstrip("/") + "/chat/completions"
    payload = {
        "model": config.model,
        "messages": messages,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "stream": False,
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    http = session or requests
    deadline = time.monotonic() + config.deadline
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            raise LLMError(f"deadline of {config.deadline:g}s passed after {attempt - 1} attempt(s)")
        try:
            response = http.post(
                url, json=payload, headers=headers,
                timeout=(min(CONNECT_TIMEOUT, remaining), min(config.timeout, remaining)),
            )
            return _answer(response)
        except LLMError as exc:
            raise LLMError(_scrub(str(exc), config.api_key)) from None
        except _Retryable as exc:
            reason, retry_after = str(exc), exc.retry_after
        except (requests.Timeout, requests.ConnectionError) as exc:
            # The exception text carries the URL at most, never the headers.
            reason, retry_after = f"{type(exc).__name__}", None
        wait = retry_after if retry_after is not None else _backoff(attempt)
        if time.monotonic() + wait >= deadline:
            raise LLMError(f"{reason}; giving up after {attempt} attempt(s), deadline {config.deadline:g}s")
        log.warning("LLM attempt %d failed (%s); retrying in %.1fs", attempt, reason, wait,
                    extra={"llm_model": config.model})
        time.sleep(wait)


def _scrub(text: str, secret: str) -> str:
    # A provider's error may quote the key it refused.
    return text.replace(secret, "***") if secret else text


def _backoff(attempt: int) -> float:
    # Exponential with full jitter, like Celery's retry_jitter.
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def _answer(response: requests.Response) -> str:
    status = response.status_code
    if status in RETRY_STATUSES or status >= 500:
        raise _Retryable(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
    if status >= 400:
        # 400 bad request, 401 bad key, 404 unknown model: retrying will not help.
        raise LLMError(f"HTTP {status}: {_error_text(response)}")
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise _Retryable(f"malformed response (HTTP {status})")
    if not isinstance(content, str) or not content.strip():
        raise _Retryable("empty answer")
    return content.strip()


def _retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _error_text(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict):
            return str(error.get("message", ""))[:200]
        return str(error)[:200]
    except (ValueError, AttributeError):
        return response.text[:200]
