"""The TTS provider interface and the audio measurements the adapters share.

A provider turns spoken text into mono 16-bit samples plus timings of character ranges of that
text: ``(char_start, char_end, t_start, t_end)``. It never transcribes: timings come from the
provider itself, from the synthesiser's own word events, or from aligning the audio to a
reference synthesis of the known text (see tts_align). The voice node maps the character ranges
back onto display words and writes the 48 kHz WAV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..types import NodeFailure

# (char_start, char_end, t_start, t_end): characters [char_start, char_end) of the spoken text
# sound from t_start to t_end seconds.
CharTiming = tuple[int, int, float, float]

# Silence threshold relative to the loudest 10 ms window: -36 dB keeps quiet fricatives as speech.
_SILENCE_RATIO = 0.016
_WINDOW_S = 0.010


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # int16, mono
    rate: int
    timings: tuple[CharTiming, ...]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


class TTSProvider(Protocol):
    def __call__(self, text: str, voice: str, speed: float) -> Speech: ...


def pcm16_samples(data: bytes, what: str) -> np.ndarray:
    """Raw little-endian signed 16-bit mono PCM as an array."""
    if len(data) % 2:
        raise NodeFailure(f"{what}: the audio is not 16-bit PCM (odd byte count {len(data)})")
    if not data:
        raise NodeFailure(f"{what}: the provider returned no audio")
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def speech_windows(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Whether each 10 ms window holds sound (RMS above the threshold), and the window length."""
    window = max(1, int(rate * _WINDOW_S))
    count = len(samples) // window
    if count == 0:
        return np.zeros(0, dtype=bool), window
    frames = samples[: count * window].astype(np.float64).reshape(count, window)
    rms = np.sqrt((frames**2).mean(axis=1))
    peak = float(rms.max())
    return (rms > max(peak * _SILENCE_RATIO, 30.0)), window


def trim_to_sound(
    voiced: np.ndarray, window: int, rate: int, start: float, end: float, fragment: float = 0.0
) -> tuple[float, float] | None:
    """Shrink [start, end] to the part that holds sound; None when all of it is silent.

    With ``fragment`` > 0, a burst of sound at either edge no longer than ``fragment`` seconds and
    cut off from the rest by a pause at least as long belongs to the neighbouring word: it is
    dropped too (for boundaries that are only approximately known, as from alignment).
    """
    # Only windows wholly inside [start, end]: a window across a boundary holds the neighbour's sound.
    first = -(-round(start * rate) // window)
    last = min(len(voiced), round(end * rate) // window)
    if last <= first:
        return None
    inside = np.flatnonzero(voiced[first:last])
    if inside.size == 0:
        return None
    if fragment > 0 and inside.size > 1:
        span = max(1, round(fragment * rate / window))
        gaps = np.flatnonzero(np.diff(inside) > span)  # pauses longer than a fragment
        if gaps.size and inside[gaps[0]] - inside[0] < span:
            inside = inside[gaps[0] + 1:]
            gaps = np.flatnonzero(np.diff(inside) > span)
        if gaps.size and inside[-1] - inside[gaps[-1] + 1] < span:
            inside = inside[: gaps[-1] + 1]
    return max(start, (first + inside[0]) * window / rate), min(end, (first + inside[-1] + 1) * window / rate)


def trimmed_timings(
    samples: np.ndarray, rate: int, timings: Sequence[CharTiming], fragment: float = 0.0
) -> tuple[CharTiming, ...]:
    """Timings whose intervals are measured down to the speech they hold (leading/trailing pauses cut)."""
    voiced, window = speech_windows(samples, rate)
    result: list[CharTiming] = []
    for char_start, char_end, t_start, t_end in timings:
        trimmed = trim_to_sound(voiced, window, rate, t_start, t_end, fragment)
        if trimmed is not None:
            result.append((char_start, char_end, *trimmed))
    return tuple(result)


def check_speed(speed: float, low: float, high: float, provider: str) -> None:
    if not low <= speed <= high:
        raise NodeFailure(f"input 'speed': {speed} is outside {low}..{high}, the range {provider} accepts")
