"""The LLM engine: the tenant's system prompt, business facts and conversation memory,
sent to an OpenAI-compatible Chat Completions API. Each setting comes from the tenant
when set there, else from the server's settings (LLM_*).

The server's LLM_API_KEY goes only to the server's LLM_BASE_URL: a tenant with a URL of
its own sends its own key there, or no Authorization header at all (whoever can edit a
tenant could otherwise point the URL at their server and receive the server's key)."""

from __future__ import annotations

import logging

from django.conf import settings

from bots.engines.base import Reply
from bots.llm_client import LLMConfig, LLMError, complete
from bots.prompt import build_messages
from whatsapp.inbox.models import InboxSettings

log = logging.getLogger("bots.llm")

# The function the model may call instead of answering (Chat Completions `tools`); the bot
# then does what a handoff keyword does (bots.handoff): says so once and pauses.
HAND_OFF = "hand_off_to_human"
HAND_OFF_TOOL = {
    "type": "function",
    "function": {
        "name": HAND_OFF,
        "description": (
            "Hand the conversation over to a person on the business's team, who will answer the customer "
            "here. Call it when the customer asks for a person, is upset or complains, or needs something "
            "you cannot do or do not know. Do not answer the customer yourself then."
        ),
        "parameters": {
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "Why, in a few words, for the team."}},
            "required": ["reason"],
            "additionalProperties": False,
        },
    },
}


def config_for(tenant) -> LLMConfig:
    server_url = settings.LLM_BASE_URL.rstrip("/")
    base_url = (tenant.llm_base_url or "").strip().rstrip("/") or server_url
    own_url = base_url != server_url
    return LLMConfig(
        base_url=base_url,
        api_key=tenant.llm_api_key or ("" if own_url else settings.LLM_API_KEY),
        model=tenant.llm_model or settings.LLM_MODEL,
        temperature=settings.LLM_TEMPERATURE if tenant.llm_temperature is None else tenant.llm_temperature,
        max_tokens=tenant.llm_max_tokens or settings.LLM_MAX_TOKENS,
        timeout=settings.LLM_TIMEOUT,
        deadline=settings.LLM_DEADLINE,
        tenant_url=own_url,
    )


class LLMEngine:
    name = "llm"
    reads_history = True

    def reply(self, tenant, inbound, history) -> Reply:
        """Raises EngineError (LLMError) when the model gives no usable answer in time.
        A Reply with handoff=True when the model chose to hand off (its text, if any, is
        not sent: the tenant's handoff answer is)."""
        config, messages = config_for(tenant), build_messages(tenant, inbound, history)
        tools = [HAND_OFF_TOOL] if InboxSettings.of(tenant).llm_hands_off else None
        try:
            result = complete(config, messages, tools=tools)
        except LLMError as exc:
            # A model server without tool support refuses the request (Ollama: "... does not
            # support tools", 400): answer without the function rather than not at all.
            if not tools or not str(exc).startswith("HTTP 400"):
                raise
            log.warning("the model server refused the handoff function; answering without it")
            result = complete(config, messages)
        return Reply(result.text, self.name, handoff=HAND_OFF in result.tool_calls)
