"""What a provider call consumed, as the provider reported it (tokens, billed characters).

Adapters ``record`` usage after each successful call; an implementation that wants the actual
cost of its calls wraps them in ``metered()`` and prices what was recorded (nodes/pipeline/costs).
Outside ``metered()`` recording does nothing, so adapters stay usable on their own. The meter is
a context variable: each execution thread sees only its own calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    provider: str  # as in providers.toml: openai, anthropic, gemini, elevenlabs…
    kind: str  # llm | tts
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    credits: float = 0.0  # billed units the provider counted (ElevenLabs credits)
    grounded: bool = False  # Gemini: the request carried the Google Search tool


_meter: ContextVar[list[Usage] | None] = ContextVar("reelgraph_provider_usage", default=None)


def record(usage: Usage) -> None:
    meter = _meter.get()
    if meter is not None:
        meter.append(usage)


@contextmanager
def metered() -> Iterator[list[Usage]]:
    """Collect the usage of provider calls made inside the block (in this thread)."""
    collected: list[Usage] = []
    token = _meter.set(collected)
    try:
        yield collected
    finally:
        _meter.reset(token)
