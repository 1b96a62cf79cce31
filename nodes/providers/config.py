"""Provider configuration: model names per provider and use case, and prices, from TOML, never
from code.

The packaged ``providers.toml`` is the default; a file named by ``REELGRAPH_PROVIDERS_CONFIG`` is
merged over it table by table, so a user file only states what it changes. Prices (``[prices]``)
feed cost estimates and the cost of runs; unlike models they never enter a cache key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..types import NodeFailure

CONFIG_ENV = "REELGRAPH_PROVIDERS_CONFIG"
DEFAULT_CONFIG = Path(__file__).with_name("providers.toml")

UseCase = Literal["story", "news", "complex"]
USE_CASES: tuple[str, ...] = UseCase.__args__  # type: ignore[attr-defined]


class ConfigError(NodeFailure):
    """The provider configuration cannot be read or is invalid."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # a typo in a key must not pass silently


class LLMProviderConfig(_Table):
    story: str = Field(min_length=1)
    news: str = Field(min_length=1)
    complex: str = Field(min_length=1)
    # OpenAI-compatible only: how JSON output is requested
    response_format: Literal["json_schema", "json_object"] = "json_schema"
    # Gemini only: use cases that send the google_search grounding tool
    grounded: tuple[UseCase, ...] = ()

    def model_for(self, use_case: str) -> str:
        return str(getattr(self, use_case))


class LLMConfig(_Table):
    max_tokens: int = Field(default=4096, ge=256, le=200_000)
    openai: LLMProviderConfig
    anthropic: LLMProviderConfig
    gemini: LLMProviderConfig


class TTSProviderConfig(_Table):
    model: str = Field(min_length=1)
    voice: str = Field(min_length=1)  # used when a node leaves `voice` empty


class TTSConfig(_Table):
    elevenlabs: TTSProviderConfig
    openai: TTSProviderConfig


Usd = Annotated[float, Field(ge=0, le=1_000_000)]  # a price; negative or absurd values are typos


class TokenPrice(_Table):
    input_per_1m_tokens: Usd
    output_per_1m_tokens: Usd  # thinking/reasoning tokens are billed as output
    grounded_request: Usd = 0.0  # Gemini: per request sent with the Google Search tool


class LLMPrices(_Table):
    """Per provider, per model name (as in [llm.<provider>]); a model without a row is unpriced."""

    openai: dict[str, TokenPrice] = {}
    anthropic: dict[str, TokenPrice] = {}
    gemini: dict[str, TokenPrice] = {}


class ElevenLabsPrices(_Table):
    per_1k_credits: Usd  # ElevenLabs bills credits; the `character-cost` header counts them
    credits_per_character: dict[str, Annotated[float, Field(gt=0, le=100)]] = {}  # per model id


class OpenAITTSPrices(_Table):
    per_1k_characters: dict[str, Usd] = {}  # per model


class TTSPrices(_Table):
    elevenlabs: ElevenLabsPrices | None = None
    openai: OpenAITTSPrices | None = None


class VideoPrices(_Table):
    kling: dict[str, Usd] = {}  # USD per second of generated clip, per Kling model (Comfy.org API nodes)


class Prices(_Table):
    llm: LLMPrices = LLMPrices()
    tts: TTSPrices = TTSPrices()
    search: dict[str, Usd] = {}  # USD per search request, per image.search provider
    video: VideoPrices = VideoPrices()


class ProvidersConfig(BaseModel):
    # other sections (e.g. another provider family's) may share the file
    model_config = ConfigDict(extra="ignore", frozen=True)
    llm: LLMConfig
    tts: TTSConfig
    prices: Prices = Prices()


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"provider config {path}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"provider config {path}: is not valid TOML ({exc})") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_path() -> Path | None:
    """The user's override file, if the environment names one."""
    value = os.environ.get(CONFIG_ENV, "").strip()
    return Path(value).expanduser() if value else None


def load_config() -> ProvidersConfig:
    """The packaged default merged with the user's file; read on every call (it is tiny)."""
    document = _read(DEFAULT_CONFIG)
    user = config_path()
    if user is not None:
        document = _merge(document, _read(user))
    try:
        return ProvidersConfig.model_validate(document)
    except ValidationError as exc:
        where = user or DEFAULT_CONFIG
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()[:5]
        )
        raise ConfigError(f"provider config {where}: {problems}") from None
