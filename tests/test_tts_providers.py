"""TTS provider adapters against loopback servers speaking each provider's wire format.

ElevenLabs: POST /v1/text-to-speech/{voice_id}/with-timestamps?output_format=…, header
``xi-api-key``, JSON body {text, model_id, voice_settings?}; 200 answers JSON {audio_base64,
alignment, normalized_alignment}; errors answer {"detail": {"status", "message"}} (422:
{"detail": [validation errors]}).
OpenAI: POST /v1/audio/speech, header ``Authorization: Bearer``, JSON {model, input, voice,
response_format, speed}; 200 answers the audio bytes; errors answer {"error": {message, type,
param, code}}. Both send 429 with Retry-After when rate limited.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from reelgraph.nodes.pipeline import voice
from reelgraph.nodes.types import NodeContext, NodeFailure

RATE = 24000
KEY = "test-key-not-secret-123"
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


class Provider(ThreadingHTTPServer):
    """A loopback server; ``answer(handler, path, query, body)`` returns (status, headers, bytes)."""

    def __init__(self, answer: Callable[..., tuple[int, dict[str, str], bytes]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.rate_limited = 0  # answer this many requests with 429 first

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Provider

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        parsed = urlparse(self.path)
        record = {"path": parsed.path, "query": parse_qs(parsed.query), "headers": dict(self.headers),
                  "body": json.loads(raw or b"null")}
        self.server.requests.append(record)
        status, headers, payload = self.server.answer(record)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def _json(status: int, body: Any, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


@pytest.fixture
def serve() -> Iterator[Callable[..., Provider]]:
    servers: list[Provider] = []

    def start(answer: Callable[..., tuple[int, dict[str, str], bytes]]) -> Provider:
        server = Provider(answer)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _speak(tmp_path: Path, text: str, provider: str, voice_id: str = "", speed: float = 1.0) -> dict[str, Any]:
    work = tmp_path / f"work-{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    return voice.tts.run(NodeContext(work, "v", None), text=text, provider=provider, voice=voice_id, speed=speed)


# ---- ElevenLabs --------------------------------------------------------------------------------
CHAR_S, SPACE_S = 0.04, 0.06  # the fake voice: 40 ms of tone per character, 60 ms of silence per space


def elevenlabs_alignment(text: str) -> dict[str, list[Any]]:
    starts, ends, clock = [], [], 0.0
    for ch in text:
        length = SPACE_S if ch == " " else CHAR_S
        starts.append(round(clock, 3))
        clock += length
        ends.append(round(clock, 3))
    return {"characters": list(text), "character_start_times_seconds": starts, "character_end_times_seconds": ends}


def elevenlabs_answer(record: dict[str, Any], server: Provider) -> tuple[int, dict[str, str], bytes]:
    match = re.fullmatch(r"/v1/text-to-speech/([^/]+)/with-timestamps", record["path"])
    if match is None:
        return _json(404, {"detail": "Not Found"})
    if record["headers"].get("xi-api-key") != KEY:
        return _json(401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}})
    if server.rate_limited > 0:
        server.rate_limited -= 1
        return _json(429, {"detail": {"status": "too_many_concurrent_requests",
                                      "message": "Too many concurrent requests for your subscription."}},
                     **{"Retry-After": "0"})
    body = record["body"]
    if not isinstance(body, dict) or not body.get("text"):
        return _json(422, {"detail": [{"type": "missing", "loc": ["body", "text"], "msg": "Field required"}]})
    if match.group(1) == "missing-voice":
        return _json(400, {"detail": {"status": "voice_not_found",
                                      "message": "A voice with the voice_id missing-voice was not found."}})
    if record["query"].get("output_format") != ["pcm_24000"]:
        return _json(422, {"detail": [{"type": "enum", "loc": ["query", "output_format"], "msg": "bad format"}]})
    alignment = elevenlabs_alignment(body["text"])
    seconds = alignment["character_end_times_seconds"][-1]
    t = np.arange(int(seconds * RATE)) / RATE
    tone = (8000 * np.sin(2 * np.pi * 220 * t)).astype("<i2")
    for ch, start, end in zip(body["text"], alignment["character_start_times_seconds"],
                              alignment["character_end_times_seconds"]):
        if ch == " ":
            tone[int(start * RATE): int(end * RATE)] = 0
    answer = {"audio_base64": base64.b64encode(tone.tobytes()).decode(), "alignment": alignment,
              "normalized_alignment": alignment}
    return _json(200, answer)


@pytest.fixture
def elevenlabs(serve, monkeypatch) -> Provider:
    server = serve(lambda record: elevenlabs_answer(record, server))
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    monkeypatch.setenv("REELGRAPH_ELEVENLABS_BASE_URL", server.url)
    monkeypatch.delenv("REELGRAPH_PROVIDERS_CONFIG", raising=False)
    return server


def test_elevenlabs_sends_the_spoken_form_and_maps_character_times_to_display_words(elevenlabs, tmp_path):
    text = "Add 3 eggs, now!"
    out = _speak(tmp_path, text, "elevenlabs")
    (request,) = elevenlabs.requests
    assert request["path"] == "/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb/with-timestamps"
    assert request["query"] == {"output_format": ["pcm_24000"]}
    assert request["headers"]["xi-api-key"] == KEY
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == {"text": "Add three eggs, now!", "model_id": "eleven_multilingual_v2"}
    # Each display word spans exactly the characters of its spoken form, as the service timed them.
    alignment = elevenlabs_alignment("Add three eggs, now!")
    starts, ends = alignment["character_start_times_seconds"], alignment["character_end_times_seconds"]
    expected = []
    for display, spoken in zip(text.split(), ["Add", "three", "eggs,", "now!"]):
        first = "Add three eggs, now!".index(spoken)
        expected.append({"text": display, "start": starts[first], "end": ends[first + len(spoken) - 1]})
    assert out["words"] == expected
    assert out["duration"] == pytest.approx(ends[-1], abs=1e-3)


def test_elevenlabs_voice_speed_and_model_come_from_the_inputs_and_provider_config(elevenlabs, tmp_path, monkeypatch):
    config = tmp_path / "providers.toml"
    config.write_text('[tts.elevenlabs]\nmodel = "eleven_flash_v2_5"\n')
    monkeypatch.setenv("REELGRAPH_PROVIDERS_CONFIG", str(config))
    _speak(tmp_path, "Hi there", "elevenlabs", voice_id="voice/with?odd#chars", speed=1.1)
    (request,) = elevenlabs.requests
    assert request["path"] == "/v1/text-to-speech/voice%2Fwith%3Fodd%23chars/with-timestamps"
    assert request["body"] == {"text": "Hi there", "model_id": "eleven_flash_v2_5", "voice_settings": {"speed": 1.1}}


def test_elevenlabs_rate_limit_is_retried(elevenlabs, tmp_path):
    elevenlabs.rate_limited = 2
    out = _speak(tmp_path, "Stir well", "elevenlabs")
    assert len(elevenlabs.requests) == 3
    assert [w["text"] for w in out["words"]] == ["Stir", "well"]


def test_elevenlabs_errors_name_the_provider_and_cause_but_never_the_key(elevenlabs, tmp_path, monkeypatch):
    with pytest.raises(NodeFailure) as missing:
        _speak(tmp_path, "Hi", "elevenlabs", voice_id="missing-voice")
    assert str(missing.value) == "elevenlabs: HTTP 400: A voice with the voice_id missing-voice was not found."
    elevenlabs.rate_limited = 10
    with pytest.raises(NodeFailure, match=r"^elevenlabs: HTTP 429: Too many concurrent requests"):
        _speak(tmp_path, "Hi", "elevenlabs")
    elevenlabs.rate_limited = 0
    monkeypatch.setenv("ELEVENLABS_API_KEY", "wrong-key")
    with pytest.raises(NodeFailure) as unauthorised:
        _speak(tmp_path, "Hi", "elevenlabs")
    assert str(unauthorised.value) == "elevenlabs: HTTP 401: Invalid API key"
    assert "wrong-key" not in str(unauthorised.value)
    with pytest.raises(NodeFailure, match=r"input 'speed': 2.0 is outside 0.7..1.2, the range ElevenLabs accepts"):
        _speak(tmp_path, "Hi", "elevenlabs", speed=2.0)


def test_elevenlabs_answer_without_alignment_is_a_provider_error(serve, tmp_path, monkeypatch):
    server = serve(lambda record: _json(200, {"audio_base64": base64.b64encode(b"\0\0" * 2400).decode(),
                                               "alignment": None, "normalized_alignment": None}))
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    monkeypatch.setenv("REELGRAPH_ELEVENLABS_BASE_URL", server.url)
    with pytest.raises(NodeFailure, match=r"elevenlabs: the answer has no usable 'alignment'"):
        _speak(tmp_path, "Hi", "elevenlabs")


# ---- OpenAI --------------------------------------------------------------------------------------
GAP_S = 0.25


def espeak_clip(word: str, tmp_path: Path) -> np.ndarray:
    """One word spoken by the espeak-ng command in a voice unlike the reference's, at 22050 Hz."""
    wav = tmp_path / "clip.wav"
    subprocess.run(["espeak-ng", "-v", "en-gb-x-rp", "-s", "150", "-p", "70", "-w", str(wav), word], check=True)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype="<i2")


class OpenAIVoice:
    """Speaks each word as its own clip with a pause between, so where each word sounds is known."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.truth: list[tuple[float, float]] = []  # first and last loud sample of each spoken word
        self.seconds = 0.0

    def __call__(self, record: dict[str, Any], server: Provider) -> tuple[int, dict[str, str], bytes]:
        if record["path"] != "/v1/audio/speech":
            return _json(404, {"error": {"message": "Not found", "type": "invalid_request_error", "param": None,
                                         "code": None}})
        if record["headers"].get("Authorization") != f"Bearer {KEY}":
            return _json(401, {"error": {"message": "Incorrect API key provided: wr***ey.", "type":
                                         "invalid_request_error", "param": None, "code": "invalid_api_key"}})
        if server.rate_limited > 0:
            server.rate_limited -= 1
            return _json(429, {"error": {"message": "Rate limit reached for requests", "type": "requests",
                                         "param": None, "code": "rate_limit_exceeded"}}, **{"Retry-After": "0"})
        body = record["body"]
        if body.get("voice") not in ("alloy", "coral"):
            return _json(400, {"error": {"message": f"Invalid value: '{body.get('voice')}'. Supported values are: "
                                         "'alloy' and 'coral'.", "type": "invalid_request_error", "param": "voice",
                                         "code": "invalid_value"}})
        pieces, clock = [], 0.0
        self.truth = []
        for word in body["input"].split():
            clip = espeak_clip(word, self.tmp_path)
            loud = np.flatnonzero(np.abs(clip) > 600)
            self.truth.append((clock + loud[0] / RATE, clock + (loud[-1] + 1) / RATE))
            pieces += [clip, np.zeros(int(GAP_S * RATE), dtype="<i2")]
            clock += (len(clip) + int(GAP_S * RATE)) / RATE
        self.seconds = clock
        return 200, {"Content-Type": "audio/pcm"}, np.concatenate(pieces).astype("<i2").tobytes()


@pytest.fixture
def openai(serve, monkeypatch, tmp_path) -> tuple[Provider, OpenAIVoice]:
    speaker = OpenAIVoice(tmp_path)
    server = serve(lambda record: speaker(record, server))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("REELGRAPH_OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.delenv("REELGRAPH_PROVIDERS_CONFIG", raising=False)
    return server, speaker


@needs_espeak
def test_openai_request_and_word_timings_measured_against_where_words_sound(openai, tmp_path):
    server, speaker = openai
    work = tmp_path / "w"
    work.mkdir()
    text = "Add 3 eggs, then stir slowly."
    out = voice.tts.run(NodeContext(work, "v", None), text=text, provider="openai", voice="", speed=1.0)
    (request,) = server.requests
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert request["body"] == {"model": "gpt-4o-mini-tts", "input": "Add three eggs, then stir slowly.",
                               "voice": "alloy", "response_format": "pcm", "speed": 1.0}
    words = out["words"]
    assert [w["text"] for w in words] == text.split()
    assert len(speaker.truth) == len(words)
    for word, (onset, offset) in zip(words, speaker.truth):
        assert abs(word["start"] - onset) < 0.1, (word, onset)
        assert abs(word["end"] - offset) < 0.12, (word, offset)
    assert out["duration"] == pytest.approx(speaker.seconds, abs=1e-3)


@needs_espeak
def test_openai_rate_limit_is_retried_and_errors_are_plain(openai, tmp_path, monkeypatch):
    server, _ = openai
    server.rate_limited = 1
    out = _speak(tmp_path, "Serve hot", "openai", voice_id="coral", speed=1.25)
    assert len(server.requests) == 2 and server.requests[-1]["body"]["speed"] == 1.25
    assert [w["text"] for w in out["words"]] == ["Serve", "hot"]
    with pytest.raises(NodeFailure) as bad_voice:
        _speak(tmp_path, "Hi", "openai", voice_id="nope")
    assert str(bad_voice.value) == "openai: HTTP 400: Invalid value: 'nope'. Supported values are: 'alloy' and 'coral'."
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-key")
    with pytest.raises(NodeFailure) as unauthorised:
        _speak(tmp_path, "Hi", "openai")
    assert str(unauthorised.value) == "openai: HTTP 401: Incorrect API key provided: wr***ey."
    assert "wrong-key" not in str(unauthorised.value)


@needs_espeak
def test_openai_json_instead_of_audio_is_refused(serve, tmp_path, monkeypatch):
    server = serve(lambda record: _json(200, {"ok": True}))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("REELGRAPH_OPENAI_BASE_URL", server.url + "/v1")
    with pytest.raises(NodeFailure, match=r"^openai: expected audio but got application/json"):
        _speak(tmp_path, "Hi", "openai")
