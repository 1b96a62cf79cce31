"""Anthropic Messages API: the script comes back as the input of a forced tool call."""

from __future__ import annotations

from typing import Any

from . import usage
from .http import ProviderError, base_url, request, secret
from .llm_base import ScriptRequest, script_json_schema, system_prompt, user_prompt

NAME = "anthropic"
KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "REELGRAPH_ANTHROPIC_BASE_URL"
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
TOOL = "write_script"


def endpoint() -> str:
    return base_url(BASE_URL_ENV, DEFAULT_BASE_URL)


def complete(script: ScriptRequest) -> Any:
    """The model's script as a JSON value (validated by the caller)."""
    headers = {"x-api-key": secret(KEY_ENV, NAME), "anthropic-version": API_VERSION}
    body = {
        "model": script.model,
        "max_tokens": script.max_tokens,
        "system": system_prompt(),
        "messages": [{"role": "user", "content": user_prompt(script)}],
        # a forced tool call makes the reply a JSON object that follows the schema
        "tools": [
            {"name": TOOL, "description": "Submit the finished video script.", "input_schema": script_json_schema()}
        ],
        "tool_choice": {"type": "tool", "name": TOOL},
    }
    reply = request(NAME, "POST", f"{endpoint()}/v1/messages", headers=headers, json_body=body, timeout=180)
    try:
        message = reply.json()
        _record_usage(script.model, message)
        blocks = message["content"]
    except (ValueError, KeyError, TypeError):
        raise ProviderError(f"{NAME}: the reply has no content blocks (not a Messages API response)") from None
    if message.get("stop_reason") == "max_tokens":
        raise ProviderError(f"{NAME}: the reply was cut off at max_tokens ({script.max_tokens}); raise llm.max_tokens")
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") == TOOL:
            return block.get("input")
    raise ProviderError(f"{NAME}: the reply did not call the {TOOL} tool (stop_reason {message.get('stop_reason')!r})")


def _record_usage(model: str, message: Any) -> None:
    """Input tokens (prompt-cache reads and writes included) and output tokens, as billed."""
    counts = message.get("usage") if isinstance(message, dict) else None
    if isinstance(counts, dict):
        fresh = sum(int(counts.get(name) or 0) for name in
                    ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        usage.record(usage.Usage(NAME, "llm", model, fresh, int(counts.get("output_tokens") or 0)))
