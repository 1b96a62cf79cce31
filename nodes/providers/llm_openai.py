"""OpenAI-compatible chat completions (OpenAI, Groq, OpenRouter, local servers) with JSON output."""

from __future__ import annotations

import os
from typing import Any

from . import usage
from .http import ProviderError, base_url, request, secret
from .llm_base import ScriptRequest, parse_json_text, script_json_schema, system_prompt, user_prompt

NAME = "openai"
KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "REELGRAPH_OPENAI_BASE_URL"
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def endpoint() -> str:
    return base_url(BASE_URL_ENV, DEFAULT_BASE_URL)


def _headers() -> dict[str, str]:
    if endpoint() != DEFAULT_BASE_URL and not os.environ.get(KEY_ENV, "").strip():
        return {}  # a self-hosted server often needs no key
    return {"Authorization": f"Bearer {secret(KEY_ENV, NAME)}"}


def complete(script: ScriptRequest) -> Any:
    """The model's script as a JSON value (validated by the caller)."""
    if script.response_format == "json_schema":
        response_format: dict[str, Any] = {
            "type": "json_schema",
            "json_schema": {"name": "video_script", "strict": True, "schema": script_json_schema()},
        }
    else:
        response_format = {"type": "json_object"}
    body = {
        "model": script.model,
        "messages": [
            {"role": "system", "content": system_prompt()},
            {"role": "user", "content": user_prompt(script)},
        ],
        "response_format": response_format,
        # the current name (reasoning models refuse the older max_tokens); servers that lack it ignore it
        "max_completion_tokens": script.max_tokens,
    }
    reply = request(NAME, "POST", f"{endpoint()}/chat/completions", headers=_headers(), json_body=body, timeout=180)
    try:
        document = reply.json()
        _record_usage(script.model, document)
        choice = document["choices"][0]
        message = choice["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ProviderError(f"{NAME}: the reply has no choices[0].message (not a chat completions response)") from None
    if message.get("refusal"):
        raise ProviderError(f"{NAME}: the model refused: {message['refusal']}")
    if choice.get("finish_reason") == "length":
        raise ProviderError(f"{NAME}: the reply was cut off at max_tokens ({script.max_tokens}); raise llm.max_tokens")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise ProviderError(f"{NAME}: the reply's message has no text content")
    return parse_json_text(NAME, content)


def _record_usage(model: str, document: dict[str, Any]) -> None:
    """Token counts as billed (completion_tokens includes any reasoning tokens)."""
    counts = document.get("usage") if isinstance(document, dict) else None
    if isinstance(counts, dict):
        usage.record(usage.Usage(NAME, "llm", model, int(counts.get("prompt_tokens") or 0),
                                 int(counts.get("completion_tokens") or 0)))
