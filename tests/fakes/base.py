"""What every local fake of a third-party HTTP API shares: a threaded server on
loopback, started and stopped by the tests, and a handler that answers JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is part of the tests, not an error


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as production HTTP servers set it. Without it a keep-alive answer
    # written as headers then body waits for the client's delayed ACK: 40 ms added to
    # every call (a twilio-client send to the fake took 42.6 ms instead of 1.3), a stall no real API
    # has. The fakes model the providers' documented behaviours, not this one.
    disable_nagle_algorithm = True

    def log_message(self, *args):  # quiet
        pass

    def send_json(self, status: int, payload: object, headers: dict | None = None, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class FakeServer:
    """Subclasses provide handler_class(); the server runs in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.lock = threading.Lock()
        self.server = QuietServer((host, port), self.handler_class())

    def handler_class(self) -> type[JsonHandler]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
