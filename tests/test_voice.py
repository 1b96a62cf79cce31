"""audio.tts with the real offline voice (espeak-ng), and the spoken-form normalisation behind it."""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reelgraph.engine import RunOptions
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline import voice
from reelgraph.nodes.pipeline.speech_text import cardinal, number_words, ordinal_words, spoken_form, year_words
from reelgraph.nodes.providers.tts_base import speech_windows
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext, NodeFailure

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture
def tts_run(engine, tmp_path):
    registry = NodeRegistry([*BUILTIN_TYPES, *voice.NODE_TYPES])

    def run(inputs: dict[str, Any]):
        document = {
            "name": "tts",
            "nodes": {"v": {"type": "audio.tts", "inputs": inputs}},
            "outputs": {name: {"link": ["v", name]} for name in ("audio", "duration", "words")},
        }
        return engine.run(bind_recipe(parse_recipe(document), registry, None, base_dir=tmp_path), RunOptions())

    return run


def _samples(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as audio:
        return np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2"), audio.getframerate()


def _check_words(words: list[dict[str, Any]], text: str, duration: float) -> None:
    assert [w["text"] for w in words] == text.split()
    previous_end = 0.0
    for word in words:
        assert previous_end <= word["start"] <= word["end"] <= duration + 1e-9
        previous_end = word["end"]


# ---- spoken form ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("display", "spoken"),
    [
        ("Add 3 eggs.", "Add three eggs."),
        ("In 2026", "In twenty twenty-six"),
        ("1999 and 2005 and 1905", "nineteen ninety-nine and two thousand five and nineteen oh five"),
        ("50% off & $2.50 or $1", "fifty percent off and two dollars and fifty cents or one dollar"),
        ("1,250 g", "one thousand two hundred fifty grams"),
        ("1 min, 5min!", "one minute, five minutes!"),
        ("Bake at 180°C for 1/2 hour", "Bake at one hundred eighty degrees Celsius for one half hour"),
        ("3.14 + 2", "three point one four plus two"),
        ("Dr. Who vs. e.g., etc.", "doctor Who versus for example, et cetera."),
        ("the 21st of 3-4 #1", "the twenty-first of three to four number one"),
        ("10:30pm or 7:05", "ten thirty p m or seven oh five"),
        ('"Quoted," she said — fine', "Quoted, she said , fine"),
        ("salt&pepper C++", "salt and pepper C plus plus"),
    ],
)
def test_spoken_form_reads_numbers_symbols_and_abbreviations(display, spoken):
    assert spoken_form(display).text == spoken


def test_spoken_spans_map_every_spoken_character_back_to_its_display_word():
    result = spoken_form("Add 3 eggs 🔥 & $5 now.")
    pieces = {d: result.text[a:b] for d, (a, b) in zip(result.display, result.spans)}
    assert pieces == {"Add": "Add", "3": "three", "eggs": "eggs", "🔥": "", "&": "and", "$5": "five dollars", "now.": "now."}
    # Character-range timings fold onto display words; an unspoken emoji gets none.
    five = result.text.index("five")
    dollars = result.text.index("dollars")
    times = result.display_times([(five, five + 4, 1.0, 1.2), (dollars, dollars + 7, 1.25, 1.6)])
    assert times == [None, None, None, None, None, (1.0, 1.6), None]


def test_number_words():
    assert cardinal(0) == "zero"
    assert cardinal(1_000_001) == "one million one"
    assert cardinal(-42) == "minus forty-two"
    assert ordinal_words(12) == "twelfth" and ordinal_words(40) == "fortieth" and ordinal_words(103) == "one hundred third"
    assert year_words(2000) == "two thousand" and year_words(1500) == "fifteen hundred" and year_words(2010) == "twenty ten"
    assert number_words("007") == "zero zero seven"
    assert number_words("2026") == "two thousand twenty-six"  # only free-standing numbers read as years


# ---- the node with the real offline voice ---------------------------------------------------
@needs_espeak
def test_offline_voice_writes_48k_wav_with_words_on_the_sound(tts_run, engine):
    text = "Hello, world! Add 3 eggs."
    result = tts_run({"text": text})
    assert not result.failures, result.failures
    path = engine.store.blob_path(result.outputs["audio"].elements[0]["$artifact"])
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate,channels:format=format_name,duration",
         "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout)
    assert probe["format"]["format_name"] == "wav"
    assert {k: probe["streams"][0][k] for k in ("codec_name", "sample_rate", "channels")} == {
        "codec_name": "pcm_s16le", "sample_rate": "48000", "channels": 1}
    duration = result.outputs["duration"].elements[0]
    assert duration == pytest.approx(float(probe["format"]["duration"]), abs=1e-3)
    words = result.outputs["words"].elements[0]
    _check_words(words, text, duration)
    # The timings are measured: every word holds sound, and the pauses after "Hello," and
    # "world!" (which espeak-ng makes) fall between words, in silence.
    samples, rate = _samples(path)
    voiced, window = speech_windows(samples, rate)
    def sound_in(a: float, b: float) -> float:
        return float(voiced[int(a * rate) // window: max(int(a * rate) // window + 1, int(b * rate) // window)].mean())
    for word in words:
        assert word["end"] - word["start"] > 0.05, word
        assert sound_in(word["start"], word["end"]) > 0.6, word
    for before, after in ((words[0], words[1]), (words[1], words[2])):
        assert after["start"] - before["end"] > 0.1
        assert sound_in(before["end"] + 0.02, after["start"] - 0.02) == 0.0


def _voiced_seconds(path: Path) -> float:
    samples, rate = _samples(path)
    voiced, window = speech_windows(samples, rate)
    where = np.flatnonzero(voiced)
    return (where[-1] + 1 - where[0]) * window / rate


@needs_espeak
def test_offline_voice_speaks_the_normalised_form(tmp_path):
    """The node's speech is espeak-ng reading "three", as long as the espeak-ng command says it."""
    out = voice.tts.run(NodeContext(tmp_path, "v", None), text="Add 3 eggs", provider="offline", voice="", speed=1.0)
    spoken, digits = tmp_path / "spoken.wav", tmp_path / "digits.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "175", "-w", str(spoken), "Add three eggs"], check=True)
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "175", "-w", str(digits), "Add 3333 eggs"], check=True)
    ours = _voiced_seconds(out["audio"])
    assert ours == pytest.approx(_voiced_seconds(spoken), abs=0.03)
    assert abs(ours - _voiced_seconds(digits)) > 0.3  # the measure tells different texts apart


@needs_espeak
def test_offline_voice_is_deterministic_and_speed_changes_it(tmp_path):
    runs = []
    for index, speed in enumerate((1.0, 1.0, 1.6)):
        work = tmp_path / str(index)
        work.mkdir()
        runs.append(voice.tts.run(NodeContext(work, "v", None), text="Whisk for two minutes.", provider="offline",
                                  voice="", speed=speed))
    assert runs[0]["audio"].read_bytes() == runs[1]["audio"].read_bytes()
    assert runs[0]["words"] == runs[1]["words"]
    assert runs[2]["duration"] < runs[0]["duration"] * 0.8
    assert runs[2]["words"][-1]["end"] < runs[0]["words"][-1]["end"]


@needs_espeak
def test_unspoken_display_words_keep_their_place_with_zero_length(tmp_path):
    text = "🔥 Stir — then serve 🍝"
    out = voice.tts.run(NodeContext(tmp_path, "v", None), text=text, provider="offline", voice="", speed=1.0)
    words = out["words"]
    _check_words(words, text, out["duration"])
    lengths = {w["text"]: round(w["end"] - w["start"], 3) for w in words}
    assert lengths["🔥"] == 0 and lengths["—"] == 0 and lengths["🍝"] == 0
    assert lengths["Stir"] > 0 and lengths["then"] > 0 and lengths["serve"] > 0
    assert words[2]["start"] == words[1]["end"]  # the dash sits where "Stir" ends


@pytest.mark.parametrize(
    ("inputs", "cause"),
    [
        ({"text": "   \n "}, "input 'text' is empty: there is nothing to speak"),
        ({"text": "🔥 — 🍝"}, "input 'text': '🔥 — 🍝' has no words to speak"),
        ({"text": "hi", "provider": "acme"}, "input 'provider': 'acme' is not one of elevenlabs, offline, openai"),
        ({"text": "hi", "speed": 9.0}, "input 'speed': 9.0 is outside 0.5..2.5, the range the offline voice accepts"),
        ({"text": "hi", "voice": "no-such-voice"},
         "input 'voice': espeak-ng has no voice 'no-such-voice' (list them with espeak-ng --voices)"),
    ],
)
@needs_espeak
def test_bad_input_fails_with_a_plain_cause(tts_run, inputs, cause):
    (failure,) = tts_run(inputs).failures
    assert failure.error["cause"] == cause


def test_provider_without_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(NodeFailure, match="set the environment variable OPENAI_API_KEY"):
        voice.tts.run(NodeContext(tmp_path, "v", None), text="hi", provider="openai", voice="", speed=1.0)


@needs_espeak
def test_environment_names_the_espeak_version():
    environment = voice.tts_environment()
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    assert environment["espeak-ng"].split()[-1] in version
    assert environment["tts"]["openai"]["model"] and environment["tts"]["elevenlabs"]["voice"]


def test_a_model_change_in_the_provider_config_changes_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("REELGRAPH_PROVIDERS_CONFIG", raising=False)
    before = voice.tts_environment()
    config = tmp_path / "providers.toml"
    config.write_text('[tts.openai]\nmodel = "tts-1-hd"\n')
    monkeypatch.setenv("REELGRAPH_PROVIDERS_CONFIG", str(config))
    after = voice.tts_environment()
    assert after["tts"]["openai"]["model"] == "tts-1-hd" and after != before
