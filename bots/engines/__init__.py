"""Reply engines behind one small interface (base.Engine)."""

from __future__ import annotations

from bots.engines.base import Engine


def get_engine(name: str) -> Engine:
    if name == "llm":
        from bots.engines.llm import LLMEngine

        return LLMEngine()
    from bots.engines.rules import RulesEngine

    return RulesEngine()
