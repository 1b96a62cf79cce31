"""OpenAI text to speech (POST /v1/audio/speech), with word timings measured by alignment.

The endpoint returns audio only, no timestamps. Word timings come from aligning the returned
audio with an offline reference synthesis of the same text (tts_align explains why that method).
We ask for ``response_format: "pcm"`` (raw 24 kHz signed 16-bit little-endian mono): no decoder
delay or container padding to shift the timings.
"""

from __future__ import annotations


from ..types import NodeFailure
from . import tts_espeak
from .config import TTSProviderConfig, load_config
from .http import ProviderError, base_url, request, secret
from .tts_align import align_to_reference
from .tts_base import Speech, check_speed, pcm16_samples

PROVIDER = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"  # like the OpenAI SDKs' base_url: includes /v1
PCM_RATE = 24000
MAX_INPUT_CHARS = 4096


def settings() -> TTSProviderConfig:
    """Model and default voice from the provider config (providers.toml), never from code."""
    return getattr(load_config().tts, PROVIDER)


def model() -> str:
    return settings().model


def synthesize(text: str, voice: str, speed: float) -> Speech:
    check_speed(speed, 0.25, 4.0, "OpenAI TTS")
    if len(text) > MAX_INPUT_CHARS:
        raise NodeFailure(
            f"input 'text': its spoken form has {len(text)} characters; OpenAI TTS takes at most {MAX_INPUT_CHARS}"
        )
    key = secret("OPENAI_API_KEY", PROVIDER)
    url = base_url("REELGRAPH_OPENAI_BASE_URL", DEFAULT_BASE_URL) + "/audio/speech"
    body = {"model": model(), "input": text, "voice": voice or settings().voice, "response_format": "pcm", "speed": speed}
    response = request(PROVIDER, "POST", url, headers={"Authorization": f"Bearer {key}"}, json_body=body, timeout=120.0)
    kind = response.headers.get("Content-Type", "")
    if kind.startswith(("application/json", "text/")):
        raise ProviderError(f"{PROVIDER}: expected audio but got {kind} ({response.text[:200]!r})")
    samples = pcm16_samples(response.content, PROVIDER)
    reference = tts_espeak.synthesize(text, "", min(2.5, max(0.5, speed)))
    return Speech(samples, PCM_RATE, align_to_reference(samples, PCM_RATE, reference))
