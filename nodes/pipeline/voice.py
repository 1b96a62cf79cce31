"""The voice node: one scene's display text -> a 48 kHz WAV, its duration and per-word timings.

Providers (nodes/providers/tts_*.py): "offline" (espeak-ng, no key), "elevenlabs" (character
timestamps from the service), "openai" (timings measured by aligning to an offline reference).
The text is spoken in its normalised form (speech_text); ``words`` always carry display words.
"""

from __future__ import annotations

import math
import wave
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ffmpeg

from ..builtin.ffmpeg_tools import ffmpeg_environment, run_ffmpeg
from ..providers import usage
from ..providers.config import load_config
from ..types import NodeContext, NodeFailure, NodeType, Port, node_type
from .costs import estimate_tts, report_usage
from .speech_text import SpokenText, spoken_form

if TYPE_CHECKING:
    from ..providers.tts_base import Speech, TTSProvider

OUTPUT_RATE = 48000
PROVIDERS = ("offline", "elevenlabs", "openai")


def _synthesizer(provider: str) -> TTSProvider:
    # The adapters load numpy (~0.1 s): imported when needed, so loading the node registry stays cheap.
    from ..providers import tts_elevenlabs, tts_espeak, tts_openai

    return {"offline": tts_espeak.synthesize, "elevenlabs": tts_elevenlabs.synthesize, "openai": tts_openai.synthesize}[
        provider
    ]


def tts_environment() -> dict[str, Any]:
    # numpy's version from its metadata and espeak-ng's from its worker: planning a cached run
    # does not import numpy (~0.1 s; see _synthesizer)
    from ..providers.espeak_process import espeak_version

    # Models and default voices are configuration, not inputs: they enter the key here so that
    # changing them in providers.toml reruns the voice.
    return {
        **ffmpeg_environment(),
        "espeak-ng": espeak_version(),
        "numpy": version("numpy"),
        "tts": load_config().tts.model_dump(),
    }


@node_type(
    "audio.tts",
    category="audio",
    impl_version="1",
    inputs=[
        Port("text", "string", description="the display text of one scene"),
        Port("provider", "string", optional=True, default="offline", description="offline, elevenlabs or openai"),
        Port("voice", "string", optional=True, default="", description="provider voice id; empty for the default"),
        Port("speed", "number", optional=True, default=1.0, description="speaking rate, 1.0 is normal"),
    ],
    outputs=[
        Port("audio", "audio", description="WAV, 48 kHz mono PCM s16"),
        Port("duration", "number", description="seconds, measured from the file"),
        Port("words", "json", description='[{"text": display word, "start": s, "end": s}, ...]'),
    ],
    resources={"tts": 1},
    environment=tts_environment,
    estimate_cost=estimate_tts,
)
def tts(ctx: NodeContext, text: str, provider: str, voice: str, speed: float) -> dict[str, Any]:
    """Speak one scene's text and report when each display word is heard."""
    if not text.strip():
        raise NodeFailure("input 'text' is empty: there is nothing to speak")
    if provider not in PROVIDERS:
        raise NodeFailure(f"input 'provider': {provider!r} is not one of {', '.join(sorted(PROVIDERS))}")
    if not math.isfinite(speed) or speed <= 0:
        raise NodeFailure(f"input 'speed': {speed} must be a positive number")
    spoken = spoken_form(text)
    if not any(ch.isalnum() for ch in spoken.text):
        raise NodeFailure(f"input 'text': {text.strip()[:60]!r} has no words to speak")
    ctx.progress(0.1, f"synthesising with {provider}")
    with usage.metered() as used:
        speech = _synthesizer(provider)(spoken.text, voice.strip(), float(speed))
    report_usage(ctx, used)
    ctx.progress(0.8, "writing audio")
    audio = _write_wav(ctx, speech)
    duration = _wav_duration(audio)
    return {"audio": audio, "duration": duration, "words": display_words(spoken, speech, duration)}


def display_words(spoken: SpokenText, speech: Speech, duration: float) -> list[dict[str, Any]]:
    """Display words in order, non-overlapping, within [0, duration]; unspoken ones get zero length."""
    words: list[dict[str, Any]] = []
    cursor = 0.0
    for display, heard in zip(spoken.display, spoken.display_times(speech.timings)):
        if heard is None:
            start = end = cursor
        else:
            start = min(max(heard[0], cursor), duration)
            end = min(max(heard[1], start), duration)
        words.append({"text": display, "start": round(float(start), 3), "end": round(float(end), 3)})
        cursor = end
    return words


def _write_wav(ctx: NodeContext, speech: Speech) -> Path:
    raw = ctx.path("speech-raw.wav")
    with wave.open(str(raw), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(speech.rate)
        out.writeframes(speech.samples.astype("<i2").tobytes())
    audio = ctx.path("voice.wav")
    # +bitexact leaves the encoder's version tag out of the file, so equal speech gives equal bytes
    stream = ffmpeg.input(str(raw)).output(
        str(audio), ar=OUTPUT_RATE, ac=1, acodec="pcm_s16le", f="wav", fflags="+bitexact"
    )
    run_ffmpeg(stream, "resample the speech to 48 kHz")
    raw.unlink()
    return audio


def _wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as audio:
        return audio.getnframes() / audio.getframerate()


NODE_TYPES: list[NodeType] = [tts]
