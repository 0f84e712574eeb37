"""A local stand-in for an OpenAI-compatible Chat Completions API (POST
/v1/chat/completions, the real request and response JSON), so the real engine can be
pointed at it with LLM_BASE_URL=<base_url>. It also answers speech to text, POST
/v1/audio/transcriptions (multipart/form-data with `file` and `model`, answer
{"text": ...} for response_format json), refusing what OpenAI refuses: a missing file or
model (400), a file format it does not know by the file name's extension (400), more
than 25 MB (413). https://platform.openai.com/docs/api-reference/audio/createTranscription
Image content in a chat message (`{"type": "image_url", "image_url": {"url":
"data:image/jpeg;base64,..."}}`) must be a data URL with valid base64 or an http(s) URL
(400 otherwise). https://platform.openai.com/docs/guides/images-vision Function tools
(`tools`, `tool_choice`) are checked as the API checks them (a function tool with a name of
[a-zA-Z0-9_-]{1,64} and object parameters; `tool_choice` only with `tools`: 400 otherwise);
an `answer` that returns a ToolCall makes the model call that function, the API's way:
`message.content` null, `message.tool_calls`, finish_reason "tool_calls", and only when the
request offered it (else the model answers in text, as a real one would have to).
https://platform.openai.com/docs/api-reference/chat/create https://platform.openai.com/docs/guides/function-calling
It records every request (headers and
body) and injects faults on request: 429 with Retry-After, 5xx, a hang, garbage, a
response without choices.

Run alone (for `make run`): python -m tests.fakes.llm_server --port 8011
Control over HTTP: GET /_fake/requests, POST /_fake/faults {"faults": [...]}, POST /_fake/reset.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fakes.base import FakeServer, JsonHandler

# Fault kinds, one per request, consumed in order: "429" (with Retry-After
# `retry_after`), "500", "502", "503", "hang" (answer nothing for `hang_seconds`),
# "garbage" (200 with a non-JSON body), "no_choices" (200 JSON without choices),
# "empty" (200 with an empty answer), "401".
FAULT_KINDS = {"429", "500", "502", "503", "hang", "garbage", "no_choices", "empty", "401"}


TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@dataclass(frozen=True)
class ToolCall:
    """What an `answer` returns to make the model call a function instead of answering."""

    name: str
    arguments: dict = field(default_factory=dict)


def bad_tools(body: dict) -> str | None:
    tools, choice = body.get("tools"), body.get("tool_choice")
    if tools is None:
        return "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified." \
            if choice is not None else None
    if not isinstance(tools, list) or not tools:
        return "Invalid 'tools': expected a non-empty array."
    for n, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            return f"Invalid 'tools[{n}]': expected a function tool."
        if not isinstance(function.get("name"), str) or not TOOL_NAME.fullmatch(function["name"]):
            return f"Invalid 'tools[{n}].function.name': string does not match pattern '^[a-zA-Z0-9_-]+$'."
        if "parameters" in function and (not isinstance(function["parameters"], dict)
                                         or function["parameters"].get("type") != "object"):
            return f"Invalid schema for function '{function['name']}': schema must be a JSON Schema of 'type: \"object\"'."
    if choice not in (None, "none", "auto", "required") and not (
        isinstance(choice, dict) and choice.get("type") == "function"
    ):
        return "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a named function."
    return None


def offered_tools(body: dict) -> set[str]:
    if body.get("tool_choice") == "none":
        return set()
    return {t["function"]["name"] for t in body.get("tools") or []}


AUDIO_FORMATS = {"flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "oga", "wav", "webm"}
MAX_AUDIO_BYTES = 25 * 1024 * 1024


def text_of(content) -> str:
    """A message's text; image parts are counted, e.g. "[1 image] what is this?"."""
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if p.get("type") == "text"]
        images = sum(1 for p in content if p.get("type") == "image_url")
        return " ".join(([f"[{images} image{'s' if images > 1 else ''}]"] if images else []) + texts)
    return content


def default_answer(body: dict) -> str:
    """A deterministic answer that shows what the model was asked."""
    last = text_of(body["messages"][-1]["content"]) if body.get("messages") else ""
    return f"LLM answer to: {last}"


def default_transcript(audio: bytes) -> str:
    """Test recordings are b"OggS" + the words "spoken" in them."""
    return audio.removeprefix(b"OggS").decode("utf-8", "replace").strip()


def bad_image(messages: list) -> str | None:
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if part.get("type") != "image_url":
                continue
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith(("http://", "https://")):
                continue
            head, _, data = url.partition(",")
            if not (head.startswith("data:image/") and head.endswith(";base64")):
                return "Invalid image URL: expected a data URL (data:image/...;base64,...) or an http(s) URL"
            try:
                base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                return "Invalid base64 image data"
    return None


def parse_multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """name -> (filename, bytes) of a multipart/form-data body."""
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    if not message.is_multipart():
        return {}
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


class FakeLLM(FakeServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None):
        self.api_key = api_key  # when set, other keys get 401 like the real APIs
        self.requests: list[dict] = []
        self.faults: list[str] = []
        self.fail_always: str | None = None
        self.retry_after = "1"
        self.hang_seconds = 30.0
        self.delay_seconds = 0.0
        self.tools_supported = True  # False: a model without tool support (Ollama answers 400)
        self.answer: Callable[[dict], str] = default_answer
        self.transcript: Callable[[bytes], str] = default_transcript
        self.transcriptions: list[dict] = []  # every transcription request: headers, model, filename, size
        super().__init__(host, port)

    @property
    def base_url(self) -> str:
        return f"{self.address}/v1"

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()
            self.fail_always = None
            self.retry_after = "1"
            self.hang_seconds = 30.0
            self.delay_seconds = 0.0
            self.tools_supported = True
            self.answer = default_answer
            self.transcript = default_transcript
            self.transcriptions.clear()
            self.api_key = None

    def inject(self, *kinds: str) -> None:
        unknown = set(kinds) - FAULT_KINDS
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}")
        with self.lock:
            self.faults.extend(kinds)

    def bodies(self) -> list[dict]:
        with self.lock:
            return [r["json"] for r in self.requests]

    def _next_fault(self) -> str | None:
        with self.lock:
            if self.faults:
                return self.faults.pop(0)
            return self.fail_always

    def _completion(self, body: dict) -> dict:
        text = self.answer(body)
        if isinstance(text, ToolCall):
            if text.name in offered_tools(body):
                return self._tool_completion(body, text)
            text = default_answer(body)  # not offered: a real model can only answer in text
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        message = {"role": "assistant", "content": text, "refusal": None}
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                 "total_tokens": prompt_tokens + len(text.split())}
        return self._envelope(body, message, "stop", usage)

    def _tool_completion(self, body: dict, call: ToolCall) -> dict:
        message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [{
            "id": "call_" + uuid.uuid4().hex[:24], "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }]}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        return self._envelope(body, message, "tool_calls", usage)

    @staticmethod
    def _envelope(body: dict, message: dict, finish_reason: str, usage: dict) -> dict:
        """A chat.completion object with one choice, as the API answers it."""
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": usage,
        }

    def handler_class(self):
        fake = self

        class Handler(JsonHandler):
            _send = JsonHandler.send_json

            def _error(self, status: int, message: str, kind: str, headers: dict | None = None):
                self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": None}},
                           headers)

            def _transcription(self, raw: bytes):
                content_type = self.headers.get("Content-Type", "")
                if not content_type.startswith("multipart/form-data"):
                    return self._error(400, "Expected multipart/form-data", "invalid_request_error")
                fields = parse_multipart(content_type, raw)
                filename, audio = fields.get("file", (None, b""))
                model = fields.get("model", (None, b""))[1].decode()
                with fake.lock:
                    fake.transcriptions.append({"headers": dict(self.headers.items()), "model": model,
                                                "filename": filename, "size": len(audio)})
                auth = self.headers.get("Authorization", "")
                if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
                    return self._error(401, "Incorrect API key provided.", "invalid_request_error")
                if not filename or not model:
                    return self._error(400, "'file' and 'model' are required", "invalid_request_error")
                if filename.rsplit(".", 1)[-1].lower() not in AUDIO_FORMATS:
                    return self._error(400, f"Invalid file format. Supported formats: {sorted(AUDIO_FORMATS)}",
                                       "invalid_request_error")
                if len(audio) > MAX_AUDIO_BYTES:
                    return self._error(413, "Maximum content size limit exceeded", "invalid_request_error")
                fault = fake._next_fault()
                if fault in {"500", "502", "503"}:
                    return self._error(int(fault), "The server had an error", "server_error")
                if fault == "hang":
                    time.sleep(fake.hang_seconds)
                    return self._error(504, "hung", "server_error")
                return self._send(200, {"text": fake.transcript(audio)})

            def do_GET(self):
                if self.path == "/_fake/requests":
                    with fake.lock:
                        return self._send(200, {"requests": list(fake.requests)})
                if self.path == "/v1/models":
                    return self._send(200, {"object": "list", "data": [
                        {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]})
                return self._error(404, "not found", "invalid_request_error")

            def do_POST(self):
                raw = self.read_body()
                if self.path == "/_fake/reset":
                    fake.reset()
                    return self._send(200, {"ok": True})
                if self.path == "/_fake/faults":
                    spec = json.loads(raw or b"{}")
                    fake.inject(*spec.get("faults", []))
                    for key in ("fail_always", "retry_after", "hang_seconds", "delay_seconds"):
                        if key in spec:
                            setattr(fake, key, spec[key])
                    return self._send(200, {"ok": True})
                if self.path == "/v1/audio/transcriptions":
                    return self._transcription(raw)
                if self.path != "/v1/chat/completions":
                    return self._error(404, f"Invalid URL (POST {self.path})", "invalid_request_error")
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._error(400, "We could not parse the JSON body of your request.",
                                       "invalid_request_error")
                with fake.lock:
                    fake.requests.append({"headers": dict(self.headers.items()), "json": body, "at": time.time()})
                auth = self.headers.get("Authorization", "")
                if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
                    # Quotes the refused key, as some providers do (a worst case for logs).
                    return self._error(401, f"Incorrect API key provided: {auth.removeprefix('Bearer ')}.",
                                       "invalid_request_error")
                if not isinstance(body.get("messages"), list) or not body.get("model"):
                    return self._error(400, "'messages' and 'model' are required", "invalid_request_error")
                problem = bad_image(body["messages"]) or bad_tools(body)
                if not problem and body.get("tools") and not fake.tools_supported:
                    problem = f"registry.ollama.ai/library/{body['model']} does not support tools"
                if problem:
                    return self._error(400, problem, "invalid_request_error")
                fault = fake._next_fault()
                if fake.delay_seconds:
                    time.sleep(fake.delay_seconds)
                if fault == "hang":
                    time.sleep(fake.hang_seconds)
                    return self._error(504, "hung", "server_error")
                if fault == "429":
                    return self._error(429, "Rate limit reached", "rate_limit_exceeded",
                                       {"Retry-After": str(fake.retry_after)})
                if fault in {"500", "502", "503"}:
                    return self._error(int(fault), "The server had an error", "server_error")
                if fault == "401":
                    return self._error(401, "Incorrect API key provided.", "invalid_request_error")
                if fault == "garbage":
                    return self._send(200, None, raw=b"<html>502 Bad Gateway</html>")
                if fault == "no_choices":
                    return self._send(200, {"id": "chatcmpl-x", "object": "chat.completion", "model": body["model"]})
                completion = fake._completion(body)
                if fault == "empty":
                    completion["choices"][0]["message"]["content"] = ""
                return self._send(200, completion)

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    args = parser.parse_args()
    fake = FakeLLM(args.host, args.port)
    print(f"fake LLM API on {fake.base_url}", flush=True)
    fake.server.serve_forever()


if __name__ == "__main__":
    main()
