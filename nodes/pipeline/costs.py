"""Cost models of the paid node types, in USD.

``estimate_*`` are the node types' ``estimate_cost``: one execution's cost from its input values,
before anything runs (``plan``). ``report_usage`` prices what providers said a call consumed
(``providers/usage.py``) and reports it on the execution's context: the actual cost. Where a
provider reports nothing, the engine records the estimate instead.

Prices come from ``[prices]`` in providers.toml (overridable like the rest of it), never from
code. The answer is None — unknown — when an input it depends on is not known yet (a link whose
upstream has not run) or the model/provider has no price; 0.0 when nothing is billed (offline
providers, local rendering, your own ComfyUI GPUs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..providers import usage
from ..providers.config import USE_CASES, Prices, TokenPrice, load_config
from ..types import NodeContext

MISSING: Any = object()  # an input whose value is not known yet

# Script output size: narration at the pace scenes are timed with, plus each scene's other fields.
CHARS_PER_TOKEN = 4.0  # English prose and JSON, the providers' own rule of thumb
TOKENS_PER_WORD = 1.35
SCENE_OVERHEAD_TOKENS = 110  # caption, search query, image prompt, motion, seconds, JSON punctuation
TITLE_TOKENS = 30
SCENES_WHEN_UNSET = 6  # `scenes` 0 asks the model for 4 to 8


def _prices() -> Prices:
    return load_config().prices


def _token_cost(price: TokenPrice, input_tokens: float, output_tokens: float) -> float:
    return (input_tokens * price.input_per_1m_tokens + output_tokens * price.output_per_1m_tokens) / 1_000_000


# ---- estimates (NodeType.estimate_cost) ----------------------------------------------------------

def estimate_script(values: Mapping[str, Any]) -> float | None:
    """script.llm: the prompt's tokens in; title and scenes out (narration words from the seconds
    per scene); a grounded Gemini request adds its search price. A written script costs nothing."""
    from ..providers.llm_base import ScriptRequest, script_json_schema, system_prompt, user_prompt
    from .script import LLM_ADAPTERS, WORDS_PER_SECOND

    provider, script = values.get("provider", MISSING), values.get("script", MISSING)
    if provider == "offline" or (isinstance(script, str) and script.strip()):
        return 0.0
    use_case = values.get("use_case", MISSING)
    if script is MISSING or provider not in LLM_ADAPTERS or use_case not in USE_CASES:
        return None
    config = load_config()
    settings = getattr(config.llm, provider)
    model = settings.model_for(use_case)
    price = getattr(config.prices.llm, provider).get(model)
    if price is None:
        return None
    scenes = values.get("scenes", MISSING)
    seconds = values.get("seconds_per_scene", MISSING)
    count = scenes if isinstance(scenes, int) and scenes > 0 else SCENES_WHEN_UNSET
    seconds = float(seconds) if isinstance(seconds, (int, float)) else 5.0
    topic = values.get("topic", "")
    request = ScriptRequest(str(topic) if topic is not MISSING else "", use_case, count, seconds, model,
                            config.llm.max_tokens)
    prompt = system_prompt() + user_prompt(request) + json.dumps(script_json_schema())
    input_tokens = len(prompt) / CHARS_PER_TOKEN
    per_scene = seconds * WORDS_PER_SECOND * TOKENS_PER_WORD + SCENE_OVERHEAD_TOKENS
    output_tokens = min(config.llm.max_tokens, TITLE_TOKENS + count * per_scene)
    grounded = provider == "gemini" and use_case in settings.grounded
    return _token_cost(price, input_tokens, output_tokens) + (price.grounded_request if grounded else 0.0)


def estimate_search(values: Mapping[str, Any]) -> float | None:
    """image.search: one search request at the provider's price ("auto": the first provider with
    keys set, the one normally answering; falling back to the next costs that one's price too)."""
    from .images import SEARCH_PROVIDERS, _configured

    provider = values.get("provider", MISSING)
    if provider == "offline":
        return 0.0
    if provider == "auto":
        provider = next((name for name, p in SEARCH_PROVIDERS.items() if _configured(p)), "offline")
        if provider == "offline":
            return 0.0
    if provider not in SEARCH_PROVIDERS:
        return None
    return _prices().search.get(provider)


def estimate_tts(values: Mapping[str, Any]) -> float | None:
    """audio.tts: the characters of the spoken form (what the provider is sent) at its price."""
    provider, text = values.get("provider", MISSING), values.get("text", MISSING)
    if provider == "offline":
        return 0.0
    if not isinstance(text, str):
        return None
    # the adapters load numpy: imported only when there is something to price
    from ..providers.tts_elevenlabs import PROVIDER as ELEVENLABS
    from ..providers.tts_openai import PROVIDER as OPENAI
    from .speech_text import spoken_form

    if provider not in (ELEVENLABS, OPENAI):
        return None
    characters = len(spoken_form(text).text)
    config = load_config()
    if provider == ELEVENLABS:
        prices = config.prices.tts.elevenlabs
        per_character = prices.credits_per_character.get(config.tts.elevenlabs.model) if prices else None
        if prices is None or per_character is None:
            return None
        return characters * per_character * prices.per_1k_credits / 1000
    table = config.prices.tts.openai
    price = table.per_1k_characters.get(config.tts.openai.model) if table else None
    return None if price is None else characters * price / 1000


def estimate_i2v(values: Mapping[str, Any]) -> float | None:
    """video.i2v: Kling bills its whole clip (5 or 10 s, the shortest covering ``seconds``) per
    second; every other model runs locally or on your own ComfyUI GPUs, which bill nothing here."""
    model = values.get("model", MISSING)
    if model is MISSING:
        return None
    if model != "kling":
        return 0.0
    from ...comfy_workflows.compiler import KLING_MODEL, KLING_SECONDS

    seconds = values.get("seconds", MISSING)
    per_second = _prices().video.kling.get(KLING_MODEL)
    if not isinstance(seconds, (int, float)) or per_second is None:
        return None
    clip = min(float(seconds), KLING_SECONDS[-1])
    billed = next(s for s in KLING_SECONDS if clip <= s + 1e-9)
    return billed * per_second


# ---- actual cost from reported usage ---------------------------------------------------------------

def usage_cost(used: Sequence[usage.Usage]) -> float | None:
    """The cost of recorded provider calls at configured prices; None if any call is unpriced."""
    prices = _prices()
    total = 0.0
    for item in used:
        if item.kind == "llm":
            price = getattr(prices.llm, item.provider, {}).get(item.model)
            if price is None:
                return None
            total += _token_cost(price, item.input_tokens, item.output_tokens)
            total += price.grounded_request if item.grounded else 0.0
        elif item.kind == "tts" and item.provider == "elevenlabs" and prices.tts.elevenlabs is not None:
            total += item.credits * prices.tts.elevenlabs.per_1k_credits / 1000
        else:
            return None
    return total


def report_usage(ctx: NodeContext, used: Sequence[usage.Usage]) -> None:
    """Report the actual cost of the provider calls an execution made, when they reported usage
    and are priced; otherwise report nothing and let the engine record the estimate."""
    cost = usage_cost(used) if used else None
    if cost is not None:
        ctx.report_cost(cost)
