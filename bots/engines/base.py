from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from whatsapp.models import Message, Tenant


@dataclass
class Reply:
    text: str
    engine: str
    handoff: bool = False  # the engine decided a person should answer (bots.handoff)


class EngineError(Exception):
    """The engine could not answer; the caller falls back to the rules engine."""


class Engine(Protocol):
    name: str
    # Whether reply() reads `history`: it is one query, not read for an engine that
    # ignores it.
    reads_history: bool

    def reply(self, tenant: Tenant, inbound: list[Message], history: list[Message]) -> Reply:
        """Answer the customer's latest message(s), given the conversation so far."""
