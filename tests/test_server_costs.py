"""Cost over real HTTP: ``POST /v1/plan`` estimates per execution and in total at the prices in
the provider config, ``GET /v1/runs/{id}`` shows what each node actually cost (providers' reported
usage where they report it, else the estimate), and reused work costs nothing but says what it
saved. The providers are loopback servers speaking OpenAI's, ElevenLabs' and Brave's wire formats.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reelgraph.tests.loopback_http import Loopback, Reply, Seen, image_bytes, image_reply, json_reply
from reelgraph.tests.test_server_support import ServerProcess, metric_sample, start_server, stop_quietly

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is not installed (audio.tts needs it)")

# Round prices so the expected numbers are plain arithmetic.
TOKEN_IN, TOKEN_OUT = 1000.0, 2000.0  # USD per 1M tokens
CREDIT = 50.0  # USD per 1k ElevenLabs credits
BRAVE = 0.25  # USD per search
KLING = 0.5  # USD per second of Kling clip
PROMPT_TOKENS, COMPLETION_TOKENS = 1000, 500  # the fake model's reported usage
BILLED_CREDITS_PER_CHARACTER = 2  # the fake ElevenLabs' bill (the config says 1 credit per character)


def config_text(token_in: float = TOKEN_IN, token_out: float = TOKEN_OUT, kling: float = KLING) -> str:
    return f"""
[llm.openai]
story = "test-story"
[tts.elevenlabs]
model = "test-voice-model"
voice = "test-voice"
[prices.llm.openai."test-story"]
input_per_1m_tokens = {token_in}
output_per_1m_tokens = {token_out}
[prices.tts.elevenlabs]
per_1k_credits = {CREDIT}
credits_per_character = {{ "test-voice-model" = 1.0 }}
[prices.search]
brave = {BRAVE}
[prices.video.kling]
"kling-v2-1" = {kling}
"""


SCRIPT = {"title": "Why the sky is blue", "scenes": [
    {"narration": "Sunlight holds every colour.", "caption": "Sunlight", "search_query": "sunlight prism",
     "image_prompt": "a prism", "motion": "zoom_in", "seconds": 3},
    {"narration": "Air scatters blue light the most.", "caption": "Blue", "search_query": "blue sky",
     "image_prompt": "a blue sky", "motion": "pan_left", "seconds": 3.5},
]}

RECIPE = {
    "name": "priced",
    "nodes": {
        "script": {"type": "script.llm", "inputs": {"topic": "why the sky is blue", "provider": "openai", "scenes": 2,
                                                    "seconds_per_scene": 4.0}},
        "narration": {"type": "json.pick", "inputs": {"value": {"link": ["script", "scenes"]}, "path": "narration"}},
        "query": {"type": "json.pick", "inputs": {"value": {"link": ["script", "scenes"]}, "path": "search_query"}},
        "voice": {"type": "audio.tts", "inputs": {"text": {"link": ["narration", "value"]}, "provider": "elevenlabs"}},
        "image": {"type": "image.search", "inputs": {"query": {"link": ["query", "value"]}, "provider": "brave",
                                                     "width": 64, "height": 96}},
        "motion": {"type": "video.i2v", "inputs": {"image": {"link": ["image", "image"]}, "seconds": 7.0, "model": "kling"}},
    },
    "outputs": {"voice": {"link": ["voice", "audio"]}, "image": {"link": ["image", "image"]},
                "clip": {"link": ["motion", "video"]}},
}
# The Kling clip needs a ComfyUI instance: it is only planned; runs leave it out.
RUN_RECIPE = {**RECIPE, "nodes": {k: v for k, v in RECIPE["nodes"].items() if k != "motion"},
              "outputs": {k: v for k, v in RECIPE["outputs"].items() if k != "clip"}}


def chat_completion(seen: Seen) -> Reply:
    return json_reply({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "test-story",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(SCRIPT), "refusal": None},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                  "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
    })


def elevenlabs_speech(seen: Seen) -> Reply:
    """40 ms of tone per character; the credits it bills in the ``character-cost`` header: here
    twice the characters, unlike the configured rate, so the test tells the bill from the estimate."""
    text = seen.json()["text"]
    starts = [round(0.04 * i, 3) for i in range(len(text))]
    alignment = {"characters": list(text), "character_start_times_seconds": starts,
                 "character_end_times_seconds": [round(s + 0.04, 3) for s in starts]}
    t = np.arange(int(0.04 * len(text) * 24000)) / 24000
    tone = (8000 * np.sin(2 * np.pi * 220 * t)).astype("<i2")
    body = {"audio_base64": base64.b64encode(tone.tobytes()).decode(), "alignment": alignment,
            "normalized_alignment": alignment}
    return json_reply(body, **{"character-cost": str(BILLED_CREDITS_PER_CHARACTER * len(text))})


@pytest.fixture(scope="module")
def providers() -> Iterator[Loopback]:
    fake = Loopback()
    fake.on("/v1/chat/completions", chat_completion)
    fake.on("/v1/text-to-speech/test-voice/with-timestamps", elevenlabs_speech)
    fake.on("/img/photo.png", image_reply(image_bytes(72, 128)))
    fake.on("/res/v1/images/search", json_reply({"type": "images", "results": [
        {"type": "image_result", "title": "a photo", "url": "https://example.org/page", "source": "example.org",
         "properties": {"url": fake.url("/img/photo.png"), "width": 72, "height": 128}}]}))
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prices") / "providers.toml"
    path.write_text(config_text())
    return path


@pytest.fixture(scope="module")
def server(plugin_path: Path, tmp_path_factory: pytest.TempPathFactory, providers: Loopback,
           config: Path) -> Iterator[ServerProcess]:
    env = {
        "REELGRAPH_PROVIDERS_CONFIG": str(config),
        "OPENAI_API_KEY": "sk-test", "REELGRAPH_OPENAI_BASE_URL": providers.url("/v1"),
        "ELEVENLABS_API_KEY": "el-test", "REELGRAPH_ELEVENLABS_BASE_URL": providers.url(),
        "BRAVE_API_KEY": "brave-test", "REELGRAPH_BRAVE_BASE_URL": providers.url(),
        "REELGRAPH_ALLOW_PRIVATE_DOWNLOADS": "1",  # the image "internet" is loopback
    }
    process = start_server(tmp_path_factory.mktemp("costs"), plugin_path, env)
    yield process
    stop_quietly(process)


def plan(server: ServerProcess, recipe: dict[str, Any] = RECIPE, **options: Any) -> dict[str, Any]:
    response = server.post("/v1/plan", {"recipe": recipe, **options})
    assert response.status_code == 200, response.text
    return dict(response.json())


def step(view: dict[str, Any], node: str) -> dict[str, Any]:
    (found,) = [s for s in view["steps"] if s["node"] == node]
    return found


def node(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in view["nodes"] if n["node"] == name)


def test_plan_estimates_follow_the_configured_prices(server: ServerProcess, config: Path) -> None:
    first = plan(server, force=["script"])  # forced: the same plan whether or not a run came first
    script = step(first, "script")
    assert script["status"] == "run" and script["estimated_cost"] > 0
    # what waits on the script: free plumbing is 0; a TTS cost needs the text (unknown yet); a search
    # and a Kling clip have a per-execution price, but how many executions is not known yet
    assert step(first, "narration")["estimated_cost"] == 0.0
    assert step(first, "voice")["status"] == "waits" and step(first, "voice")["estimated_cost"] is None
    assert step(first, "image")["estimated_cost"] == pytest.approx(BRAVE)
    assert step(first, "motion")["estimated_cost"] == pytest.approx(10 * KLING)  # 7 s asks for the 10 s clip
    assert first["cost"] == pytest.approx(script["estimated_cost"]) and first["cost_unpriced"] == 3
    assert first["cost_saved"] == 0.0 and "providers.toml" in first["cost_note"]

    try:
        config.write_text(config_text(token_in=2 * TOKEN_IN, token_out=2 * TOKEN_OUT, kling=0.1))
        doubled = plan(server, force=["script"])  # the server reads prices on every plan: no restart
        assert step(doubled, "script")["estimated_cost"] == pytest.approx(2 * script["estimated_cost"])
        assert step(doubled, "motion")["estimated_cost"] == pytest.approx(10 * 0.1)
        config.write_text(config_text(token_in=0.0, token_out=0.0))
        assert plan(server, force=["script"])["cost"] == 0.0
    finally:
        config.write_text(config_text())
    assert step(doubled, "script")["reason"] == script["reason"]  # prices are not part of any key


def test_run_records_actual_costs_and_reuse_costs_nothing(server: ServerProcess, providers: Loopback) -> None:
    run_id = server.submit({"recipe": RUN_RECIPE})
    view = server.wait(run_id)
    assert view["status"] == "succeeded", view["errors"]

    # the LLM reported its token usage: that, at the configured prices, not the estimate
    llm = (PROMPT_TOKENS * TOKEN_IN + COMPLETION_TOKENS * TOKEN_OUT) / 1_000_000
    assert node(view, "script")["cost"] == pytest.approx(llm)
    # ElevenLabs reported the credits of each scene's text: its bill, not the estimate
    spoken = [seen.json()["text"] for seen in providers.to("/v1/text-to-speech/test-voice/with-timestamps")]
    billed = [BILLED_CREDITS_PER_CHARACTER * len(text) * CREDIT / 1000 for text in spoken]
    assert sorted(e["cost"] for e in node(view, "voice")["elements"]) == pytest.approx(sorted(billed))
    # Brave reports nothing: each search costs its estimate
    assert [e["cost"] for e in node(view, "image")["elements"]] == pytest.approx([BRAVE, BRAVE])
    assert node(view, "narration")["cost"] == 0.0
    total = llm + sum(billed) + 2 * BRAVE
    assert view["cost"] == pytest.approx(total) and view["cost_unpriced"] == 0 and view["cost_saved"] == 0.0

    cached = plan(server, RUN_RECIPE)  # everything is in the cache now
    assert cached["counts"] == {"cached": 1 + 2 * 4, "run": 0, "waits": 0}
    assert cached["cost"] == 0.0 and cached["cost_saved"] == pytest.approx(total)
    assert step(cached, "script")["saved"] == pytest.approx(llm)

    again = server.wait(server.submit({"recipe": RUN_RECIPE, "metadata": {"again": True}}))
    assert again["counts"]["cached"] == 9 and again["cost"] == 0.0
    assert again["cost_saved"] == pytest.approx(total)
    assert node(again, "script")["cost"] == 0.0 and node(again, "script")["saved"] == pytest.approx(llm)
    assert len(providers.to("/v1/chat/completions")) == 1  # reused, not asked again

    metrics = server.get("/metrics").text
    assert metric_sample(metrics, 'reelgraph_cost_usd_total{type="script.llm"}') == pytest.approx(llm)
    assert metric_sample(metrics, 'reelgraph_cost_usd_total{type="audio.tts"}') == pytest.approx(sum(billed))
    assert metric_sample(metrics, 'reelgraph_cost_saved_usd_total{type="image.search"}') == pytest.approx(2 * BRAVE)


def test_cli_plan_prints_estimates_and_a_total(cli: Any, tmp_path: Path, config: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELGRAPH_PROVIDERS_CONFIG", str(config))
    recipe = tmp_path / "priced.json"
    recipe.write_text(json.dumps(RECIPE))
    steps = json.loads(cli("plan", str(recipe), "--json", check_code=0).stdout)
    estimate = next(s for s in steps if s["node"] == "script")["estimated_cost"]
    text = cli("plan", str(recipe), check_code=0).stdout
    assert re.search(rf"run +script \(script\.llm\): never ran +\[\${estimate:.4f}\]", text), text
    assert "waits   voice (audio.tts): its key depends on the new output of 'script'  [cost unknown]" in text
    assert f"estimated cost: ${estimate:.4f}, 3 step(s) not priced" in text
