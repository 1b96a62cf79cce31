"""Gemini generateContent: JSON mode with a response schema, or Google Search grounding for news.

Gemini refuses a tool together with a JSON response mime type, so a grounded request asks for
JSON in the prompt and the reply's text is parsed instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from . import usage
from .http import ProviderError, base_url, request, secret
from .llm_base import ScriptRequest, parse_json_text, script_json_schema, system_prompt, user_prompt

NAME = "gemini"
KEY_ENV = "GEMINI_API_KEY"
BASE_URL_ENV = "REELGRAPH_GEMINI_BASE_URL"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


def endpoint() -> str:
    return base_url(BASE_URL_ENV, DEFAULT_BASE_URL)


def _openapi_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Gemini's responseSchema is an OpenAPI subset: upper-case types, no additionalProperties."""
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "additionalProperties":
            continue
        if key == "type":
            converted[key] = str(value).upper()
        elif key == "properties":
            converted[key] = {name: _openapi_schema(sub) for name, sub in value.items()}
            converted["propertyOrdering"] = list(value)
        elif key == "items":
            converted[key] = _openapi_schema(value)
        else:
            converted[key] = value
    return converted


def complete(script: ScriptRequest) -> Any:
    """The model's script as a JSON value (validated by the caller)."""
    body: dict[str, Any] = {
        "systemInstruction": {"parts": [{"text": system_prompt()}]},
        "contents": [{"role": "user", "parts": [{"text": user_prompt(script)}]}],
        "generationConfig": {"maxOutputTokens": script.max_tokens},
    }
    if script.grounded:
        body["tools"] = [{"google_search": {}}]
    else:
        body["generationConfig"] |= {
            "responseMimeType": "application/json",
            "responseSchema": _openapi_schema(script_json_schema()),
        }
    model = script.model.removeprefix("models/")  # both spellings appear in Google's docs
    url = f"{endpoint()}/v1beta/models/{quote(model, safe='')}:generateContent"
    reply = request(NAME, "POST", url, headers={"x-goog-api-key": secret(KEY_ENV, NAME)}, json_body=body, timeout=180)
    try:
        document = reply.json()
    except ValueError:
        raise ProviderError(f"{NAME}: the reply is not JSON") from None
    _record_usage(script, document)
    blocked = (document.get("promptFeedback") or {}).get("blockReason")
    if blocked:
        raise ProviderError(f"{NAME}: the prompt was blocked ({blocked})")
    candidates = document.get("candidates") or []
    if not candidates:
        raise ProviderError(f"{NAME}: the reply has no candidates")
    candidate = candidates[0]
    reason = candidate.get("finishReason", "STOP")
    if reason == "MAX_TOKENS":
        raise ProviderError(f"{NAME}: the reply was cut off at max_tokens ({script.max_tokens}); raise llm.max_tokens")
    if reason != "STOP":
        raise ProviderError(f"{NAME}: generation stopped early ({reason})")
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(part.get("text", "") for part in parts if isinstance(part, dict) and not part.get("thought"))
    if not text.strip():
        raise ProviderError(f"{NAME}: the reply has no text")
    return parse_json_text(NAME, text)


def _record_usage(script: ScriptRequest, document: Any) -> None:
    """usageMetadata: prompt tokens in, candidate and thinking tokens out (both billed as output)."""
    counts = document.get("usageMetadata") if isinstance(document, dict) else None
    if isinstance(counts, dict):
        output = int(counts.get("candidatesTokenCount") or 0) + int(counts.get("thoughtsTokenCount") or 0)
        usage.record(usage.Usage(NAME, "llm", script.model, int(counts.get("promptTokenCount") or 0), output,
                                 grounded=script.grounded))
