"""Free loopback ports for the servers a test starts."""

from __future__ import annotations

import contextlib
import socket


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different free ports. Each socket stays bound until all are chosen: closed one
    by one, the kernel may hand the same port out twice (seen in CI: gunicorn and nginx given
    one port, and nginx could not bind)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
