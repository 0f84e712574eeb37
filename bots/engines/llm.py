"""The LLM engine: the tenant's system prompt, business facts and conversation memory,
sent to an OpenAI-compatible Chat Completions API. Each setting comes from the tenant
when set there, else from the server's settings (LLM_*)."""

from __future__ import annotations

from django.conf import settings

from bots.engines.base import Reply
from bots.llm_client import LLMConfig, chat_completion
from bots.prompt import build_messages


def config_for(tenant) -> LLMConfig:
    return LLMConfig(
        base_url=(tenant.llm_base_url or settings.LLM_BASE_URL).rstrip("/"),
        api_key=tenant.llm_api_key or settings.LLM_API_KEY,
        model=tenant.llm_model or settings.LLM_MODEL,
        temperature=settings.LLM_TEMPERATURE if tenant.llm_temperature is None else tenant.llm_temperature,
        max_tokens=tenant.llm_max_tokens or settings.LLM_MAX_TOKENS,
        timeout=settings.LLM_TIMEOUT,
        deadline=settings.LLM_DEADLINE,
    )


class LLMEngine:
    name = "llm"

    def reply(self, tenant, inbound, history) -> Reply:
        """Raises EngineError (LLMError) when the model gives no usable answer in time."""
        return Reply(chat_completion(config_for(tenant), build_messages(tenant, inbound, history)), self.name)
