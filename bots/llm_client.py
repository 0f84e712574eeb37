"""One call to an OpenAI-compatible Chat Completions API (OpenAI, Ollama, vLLM, LM Studio,
OpenRouter...), retried within a total deadline.

Retried: timeouts and connection errors, 408, 409, 429 (honouring Retry-After), 5xx, and a
200 whose body is not a usable completion. Not retried: other 4xx (a wrong key or model
name does not fix itself). When the deadline would be passed, LLMError is raised and the
caller falls back to the rules engine, so the customer still gets an answer.

The API key travels only in the Authorization header; it is never logged, and no error
message built here contains it, nor any text of the server's response (a tenant's URL
may lead to anyone's server, and these errors are shown to staff): errors say in words
what went wrong. A tenant's URL is called through bots.llm_url's guard (no internal
addresses).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests
from django.views.decorators.debug import sensitive_variables

from bots.engines.base import EngineError
from bots.llm_url import guarded_session

log = logging.getLogger("bots.llm")

RETRY_STATUSES = {408, 409, 429}
# What a refusal means, in words (the response body is never repeated).
REFUSALS = {
    400: "the model server refused the request (check the model name and settings)",
    401: "the API key was refused",
    403: "the API key may not use this model",
    404: "no such model, or the base URL is wrong (it should end before /chat/completions)",
    413: "the request was too large for the model server",
    422: "the model server refused the request (check the model name and settings)",
}
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
    tenant_url: bool = False  # the tenant's own URL: called only through the address guard

    def __repr__(self) -> str:  # never print the key, even in a traceback or a debugger
        return f"LLMConfig(base_url={self.base_url!r}, model={self.model!r}, api_key={'set' if self.api_key else 'unset'})"


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Completion:
    """The assistant's text ("" when it only called tools) and the names of the offered
    tools it called (Chat Completions `message.tool_calls`)."""

    text: str
    tool_calls: tuple[str, ...] = ()


def chat_completion(config: LLMConfig, messages: list[dict], session: requests.Session | None = None) -> str:
    """The assistant's answer text for `messages`, or LLMError."""
    return complete(config, messages, session=session).text


@sensitive_variables("headers")
def complete(config: LLMConfig, messages: list[dict], tools: list[dict] | None = None,
             session: requests.Session | None = None) -> Completion:
    """The assistant's answer for `messages`, offering `tools` (the API's function tools,
    tool_choice "auto": the model may answer, or call one of them), or LLMError."""
    url = config.base_url.rstrip("/") + "/chat/completions"
    payload = {
        "model": config.model,
        "messages": messages,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "stream": False,
    }
    if tools:
        payload.update(tools=tools, tool_choice="auto")
    offered = frozenset(tool["function"]["name"] for tool in tools or ())
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    if session is None and config.tenant_url:
        # A blocked tenant URL raises BlockedURL (an EngineError), never retried.
        with guarded_session(url) as guarded:
            return complete(config, messages, tools, guarded)
    http = session or requests
    deadline = time.monotonic() + config.deadline
    attempt, reason = 0, ""
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            # The deadline can pass while waiting to retry (a loaded machine): the last
            # failure is still why the model gave no answer, and staff read it.
            passed = f"deadline of {config.deadline:g}s passed after {attempt - 1} attempt(s)"
            raise LLMError(f"{reason}; {passed}" if reason else passed)
        try:
            response = http.post(
                url, json=payload, headers=headers,
                timeout=(min(CONNECT_TIMEOUT, remaining), min(config.timeout, remaining)),
            )
            return _answer(response, offered)
        except _Retryable as exc:
            reason, retry_after = str(exc), exc.retry_after
        except requests.Timeout:
            reason, retry_after = "the model server did not answer in time", None
        except requests.ConnectionError:
            reason, retry_after = "could not connect to the model server", None
        wait = retry_after if retry_after is not None else _backoff(attempt)
        if time.monotonic() + wait >= deadline:
            raise LLMError(f"{reason}; giving up after {attempt} attempt(s), deadline {config.deadline:g}s")
        log.warning("LLM attempt %d failed (%s); retrying in %.1fs", attempt, reason, wait,
                    extra={"llm_model": config.model})
        time.sleep(wait)


def _backoff(attempt: int) -> float:
    # Exponential with full jitter, like Celery's retry_jitter.
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def _answer(response: requests.Response, offered: frozenset[str] = frozenset()) -> Completion:
    status = response.status_code
    if status in RETRY_STATUSES or status >= 500:
        raise _Retryable(f"HTTP {status} from the model server", _retry_after(response.headers.get("Retry-After")))
    if status >= 400:
        # 400 bad request, 401 bad key, 404 unknown model: retrying will not help.
        raise LLMError(f"HTTP {status}: {REFUSALS.get(status, 'the model server refused the request')}")
    try:
        data = response.json()
        message = data["choices"][0]["message"]
        content = message.get("content")
        called = tuple(_tool_names(message.get("tool_calls"), offered))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise _Retryable(f"the model server's answer was not a usable completion (HTTP {status})")
    text = content.strip() if isinstance(content, str) else ""
    if not text and not called:
        raise _Retryable("the model gave an empty answer")
    return Completion(text, called)


def _tool_names(tool_calls, offered: frozenset[str]):
    """The offered functions the model called; `arguments` must be a JSON object (a model
    that answers with a broken call gave no usable completion: retried)."""
    for call in tool_calls or ():
        function = call["function"]
        if call.get("type", "function") != "function" or function["name"] not in offered:
            continue
        if not isinstance(json.loads(function.get("arguments") or "{}"), dict):
            raise ValueError("tool arguments are not a JSON object")
        yield function["name"]


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
