"""ElevenLabs text to speech with character timestamps.

POST {base}/v1/text-to-speech/{voice_id}/with-timestamps?output_format=pcm_24000 with header
``xi-api-key``; the JSON answer holds ``audio_base64`` and ``alignment`` (``characters``,
``character_start_times_seconds``, ``character_end_times_seconds``) for the text we sent.
We send our own spoken form, so ``alignment`` (not ``normalized_alignment``) maps straight
back to display words. PCM avoids MP3 decoder delay shifting audio against the timestamps.
"""

from __future__ import annotations

import base64
import binascii
import difflib
from typing import Any
from urllib.parse import quote

from . import usage
from .config import TTSProviderConfig, load_config
from .http import ProviderError, base_url, request, secret
from .tts_base import CharTiming, Speech, check_speed, pcm16_samples

PROVIDER = "elevenlabs"
DEFAULT_BASE_URL = "https://api.elevenlabs.io"
OUTPUT_FORMAT = "pcm_24000"
PCM_RATE = 24000


def settings() -> TTSProviderConfig:
    """Model and default voice from the provider config (providers.toml), never from code."""
    return getattr(load_config().tts, PROVIDER)


def model() -> str:
    return settings().model


def synthesize(text: str, voice: str, speed: float) -> Speech:
    check_speed(speed, 0.7, 1.2, "ElevenLabs")
    key = secret("ELEVENLABS_API_KEY", PROVIDER)
    voice_id = voice or settings().voice
    base = base_url("REELGRAPH_ELEVENLABS_BASE_URL", DEFAULT_BASE_URL)
    url = f"{base}/v1/text-to-speech/{quote(voice_id, safe='')}/with-timestamps"
    body: dict[str, Any] = {"text": text, "model_id": model()}
    if speed != 1.0:  # voice_settings replace the voice's stored settings: send them only when needed
        body["voice_settings"] = {"speed": speed}
    response = request(
        PROVIDER, "POST", url, headers={"xi-api-key": key, "Accept": "application/json"},
        json_body=body, params={"output_format": OUTPUT_FORMAT}, timeout=120.0,
    )
    try:
        payload = response.json()
        audio = base64.b64decode(payload["audio_base64"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ProviderError(f"{PROVIDER}: the answer is not JSON with base64 'audio_base64'") from None
    samples = pcm16_samples(audio, PROVIDER)
    _record_usage(str(body["model_id"]), response.headers.get("character-cost"))
    return Speech(samples, PCM_RATE, character_timings(text, payload.get("alignment")))


def character_timings(text: str, alignment: Any) -> tuple[CharTiming, ...]:
    """Per-character timings over ``text`` from ElevenLabs' alignment (whitespace carries none)."""
    try:
        characters = [str(c) for c in alignment["characters"]]
        starts = [float(t) for t in alignment["character_start_times_seconds"]]
        ends = [float(t) for t in alignment["character_end_times_seconds"]]
    except (TypeError, KeyError, ValueError):
        raise ProviderError(f"{PROVIDER}: the answer has no usable 'alignment' (characters and their times)") from None
    if not (len(characters) == len(starts) == len(ends)):
        raise ProviderError(f"{PROVIDER}: the alignment's characters and times differ in length")
    aligned = "".join(characters)
    # Each alignment entry is normally one character of what we sent; match them up by content
    # so an entry the service added, dropped or changed cannot shift the rest.
    entry_of_char = [i for i, entry in enumerate(characters) for _ in entry]
    timings: list[CharTiming] = []
    matcher = difflib.SequenceMatcher(None, aligned, text, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            entry = entry_of_char[block.a + k]
            position = block.b + k
            if text[position].isspace():
                continue
            timings.append((position, position + 1, starts[entry], max(starts[entry], ends[entry])))
    return tuple(timings)


def _record_usage(model_id: str, billed: str | None) -> None:
    """ElevenLabs reports the credits a request used in the ``character-cost`` header."""
    try:
        credits = float(billed) if billed is not None else None
    except ValueError:
        credits = None
    if credits is not None and credits >= 0:
        usage.record(usage.Usage(PROVIDER, "tts", model_id, credits=credits))
