"""Offline TTS with espeak-ng, with word timings from the synthesiser itself.

The espeak-ng library (not the ``espeak-ng`` command) reports a WORD event with the exact audio
position where each word starts while it synthesises the whole sentence, so timings are exact
and the prosody is natural. (Synthesising word by word through the command would also give
exact timings, but sounds choppy.) A word ends where the next word or clause event begins; the
pause in between is then measured off the samples (tts_base.trimmed_timings). Each synthesis
runs in a fresh process (tts_espeak_worker.py says why).
"""

from __future__ import annotations

import numpy as np

from ..types import NodeFailure
from .espeak_process import run_worker
from .tts_base import CharTiming, Speech, check_speed, trimmed_timings

DEFAULT_VOICE = "en-us"
BASE_RATE_WPM = 175  # espeak-ng's default speaking rate: speed 1.0
_EVENT_WORD = 1
_MISSING = "espeak-ng is not installed (Debian: apt-get install espeak-ng)"


def word_timings(events: list[list[int]], duration_ms: int) -> list[CharTiming]:
    """A WORD event starts a word; the next word or clause boundary ends it."""
    marks = sorted({audio_ms for _, _, _, audio_ms in events} | {duration_ms})
    timings: list[CharTiming] = []
    for kind, text_position, length, audio_ms in events:
        if kind != _EVENT_WORD:
            continue
        end_ms = next((mark for mark in marks if mark > audio_ms), duration_ms)
        start = text_position - 1
        timings.append((start, start + max(1, length), audio_ms / 1000, end_ms / 1000))
    return timings


def synthesize(text: str, voice: str, speed: float) -> Speech:
    """Speak ``text`` offline; timings are per word, from espeak-ng's own events."""
    check_speed(speed, 0.5, 2.5, "the offline voice")
    voice = voice or DEFAULT_VOICE
    answer, body = run_worker({"text": text, "voice": voice, "rate_wpm": round(BASE_RATE_WPM * speed)})
    error = answer.get("error")
    if error == "missing":
        raise NodeFailure(_MISSING)
    if error == "voice":
        raise NodeFailure(f"input 'voice': espeak-ng has no voice {voice!r} (list them with espeak-ng --voices)")
    if error:
        raise NodeFailure(f"espeak-ng failed to synthesise the text ({error})")
    order = "<" if answer["byteorder"] == "little" else ">"
    samples = np.frombuffer(body[: len(body) // 2 * 2], dtype=f"{order}i2").astype(np.int16)
    if samples.size == 0:
        raise NodeFailure("espeak-ng produced no audio for the text")
    rate = int(answer["rate"])
    timings = word_timings(answer["events"], round(len(samples) * 1000 / rate))
    return Speech(samples, rate, trimmed_timings(samples, rate, timings))
