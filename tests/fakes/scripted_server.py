"""A local HTTP server that answers each request with the next scripted response: a
status and a JSON body, a raw body, an answer only after a delay, or a connection closed
without any answer. For the per-provider error classification tests: the provider's
real HTTP client talks to it over a real socket."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tests.fakes.base import FakeServer, JsonHandler


@dataclass
class Answer:
    status: int = 200
    body: object = None
    raw: bytes | None = None  # sent instead of the JSON body (a proxy's HTML page, garbage)
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a hung server when above the client's timeout)
    hang_up: bool = False  # read the request, then close the connection without a word


class ScriptedServer(FakeServer):
    def __init__(self):
        self.script: list[Answer] = []
        self.requests: list[tuple[str, str, bytes]] = []  # (method, path, body)
        super().__init__()

    def answer(self, *answers: Answer) -> None:
        with self.lock:
            self.script = list(answers)
            self.requests = []

    def _next(self) -> Answer:
        with self.lock:
            return self.script.pop(0) if self.script else Answer(500, {"error": "nothing scripted"})

    def handler_class(self):
        fake = self

        class Handler(JsonHandler):
            def _serve(self):
                body = self.read_body()
                with fake.lock:
                    fake.requests.append((self.command, self.path, body))
                answer = fake._next()
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.hang_up:
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_json(answer.status, answer.body, answer.headers, answer.raw)

            do_GET = do_POST = _serve

        return Handler
