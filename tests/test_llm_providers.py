"""LLM adapters against loopback servers speaking each provider's wire format: request shape,
auth headers, replies, errors, 429 with Retry-After, and validation failures in plain words."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.pipeline.script import NODE_TYPES as SCRIPT_TYPES
from reelgraph.nodes.pipeline.script import script_llm
from reelgraph.nodes.providers.config import CONFIG_ENV
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext, NodeFailure
from reelgraph.tests.loopback_http import Loopback, json_reply

SCRIPT = {
    "title": "Why the sky is blue",
    "scenes": [
        {
            "narration": "Sunlight holds every colour.",
            "caption": "Sunlight holds every colour",
            "search_query": "sunlight prism",
            "image_prompt": "a prism splitting sunlight",
            "motion": "zoom_in",
            "seconds": 3,
        },
        {
            "narration": "Air scatters blue light the most.",
            "caption": "Blue scatters most",
            "search_query": "blue sky",
            "image_prompt": "a deep blue sky over hills",
            "motion": "pan_left",
            "seconds": 3.5,
            "extra": "ignored",
        },
    ],
}
CONFIG = """
[llm]
max_tokens = 1000
[llm.openai]
story = "oa-story"
news = "oa-news"
complex = "oa-complex"
[llm.anthropic]
story = "an-story"
[llm.gemini]
story = "ge-story"
news = "ge-news"
"""


@pytest.fixture(autouse=True)
def providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loopback: Loopback) -> Loopback:  # noqa: F811
    config = tmp_path / "providers.toml"
    config.write_text(CONFIG)
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test")
    monkeypatch.setenv("REELGRAPH_OPENAI_BASE_URL", loopback.url("/v1"))
    monkeypatch.setenv("REELGRAPH_ANTHROPIC_BASE_URL", loopback.url())
    monkeypatch.setenv("REELGRAPH_GEMINI_BASE_URL", loopback.url())
    return loopback


def providers_config_path() -> str:
    return os.environ[CONFIG_ENV]


def write(tmp_path: Path, **inputs: Any) -> dict[str, Any]:
    values = {"topic": "why the sky is blue", "script": "", "use_case": "story", "provider": "openai",
              "scenes": 0, "seconds_per_scene": 4.0, "style": ""} | inputs
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return script_llm.run(NodeContext(work, "script", None), **values)


def failure(tmp_path: Path, **inputs: Any) -> str:
    with pytest.raises(NodeFailure) as caught:
        write(tmp_path, **inputs)
    return str(caught.value)


# ---- OpenAI-compatible ---------------------------------------------------------------------------

def chat_completion(content: str, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "oa-story",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
             "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 80, "total_tokens": 130},
    }


def openai_error(status: int, message: str, code: str, kind: str = "invalid_request_error", **headers: str):
    return json_reply({"error": {"message": message, "type": kind, "param": None, "code": code}}, status, **headers)


def test_openai_structured_output_request_and_reply(tmp_path, providers):
    providers.on("/v1/chat/completions", json_reply(chat_completion(json.dumps(SCRIPT))))
    result = write(tmp_path, style="soft watercolor", scenes=2)
    (seen,) = providers.to("/v1/chat/completions")
    assert seen.method == "POST" and seen.headers["authorization"] == "Bearer sk-test-openai"
    body = seen.json()
    assert body["model"] == "oa-story" and body["max_completion_tokens"] == 1000  # from the config file
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "why the sky is blue" in body["messages"][1]["content"] and "exactly 2 scenes" in body["messages"][1]["content"]
    schema = body["response_format"]["json_schema"]
    assert body["response_format"]["type"] == "json_schema" and schema["strict"] is True
    scene_schema = schema["schema"]["properties"]["scenes"]["items"]
    assert scene_schema["additionalProperties"] is False
    assert set(scene_schema["required"]) == {"narration", "caption", "search_query", "image_prompt", "motion", "seconds"}
    assert result["title"] == "Why the sky is blue"
    assert result["scenes"] == result["script"]["scenes"]
    first, second = result["scenes"]
    assert first["image_prompt"] == "a prism splitting sunlight, soft watercolor"  # style on every prompt
    assert second["image_prompt"] == "a deep blue sky over hills, soft watercolor"
    assert "extra" not in second and second["seconds"] == 3.5 and second["motion"] == "pan_left"
    assert list(first) == ["narration", "caption", "search_query", "image_prompt", "motion", "seconds"]


def test_openai_json_object_mode_for_servers_without_structured_outputs(tmp_path, providers):
    config = Path(providers_config_path())
    config.write_text(CONFIG.replace('[llm.openai]\n', '[llm.openai]\nresponse_format = "json_object"\n'))
    fenced = "Here you go:\n```json\n" + json.dumps(SCRIPT) + "\n```"
    providers.on("/v1/chat/completions", json_reply(chat_completion(fenced)))
    result = write(tmp_path, use_case="complex")
    body = providers.to("/v1/chat/completions")[0].json()
    assert body["response_format"] == {"type": "json_object"} and body["model"] == "oa-complex"
    assert [scene["narration"] for scene in result["scenes"]] == [s["narration"] for s in SCRIPT["scenes"]]


def test_openai_rate_limit_is_retried_after_the_servers_delay(tmp_path, providers):
    providers.on(
        "/v1/chat/completions",
        openai_error(429, "Rate limit reached for requests", "rate_limit_exceeded", "requests", **{"Retry-After": "0"}),
        json_reply(chat_completion(json.dumps(SCRIPT))),
    )
    assert write(tmp_path)["title"] == "Why the sky is blue"
    assert len(providers.to("/v1/chat/completions")) == 2


def test_openai_errors_are_plain_and_never_show_the_key(tmp_path, providers):
    providers.on("/v1/chat/completions", openai_error(401, "Incorrect API key provided: sk-tes***nai.", "invalid_api_key"))
    message = failure(tmp_path)
    assert message == "openai: HTTP 401: Incorrect API key provided: sk-tes***nai."
    assert "sk-test-openai" not in message
    assert len(providers.to("/v1/chat/completions")) == 1  # a 401 is not retried


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (chat_completion(json.dumps({"title": "t", "scenes": [{"caption": "c"}]})),
         "openai: the model's script does not have the expected shape: scenes.0.narration: Field required"),
        (chat_completion(json.dumps({"title": "t", "scenes": [dict(SCRIPT["scenes"][0], motion="spin")]})),
         "openai: the model's script does not have the expected shape: scenes.0.motion: Input should be"),
        (chat_completion("Sorry, I cannot write JSON today."), "openai: the model did not reply with JSON"),
        (chat_completion('{"title": "t", "scenes": [', "length"), "openai: the reply was cut off at max_tokens (1000)"),
        ({"object": "list", "data": []}, "openai: the reply has no choices[0].message"),
    ],
)
def test_openai_bad_replies_fail_with_the_cause(reply, expected, tmp_path, providers):
    providers.on("/v1/chat/completions", json_reply(reply))
    assert failure(tmp_path).startswith(expected)


def test_openai_scene_count_is_enforced(tmp_path, providers):
    providers.on("/v1/chat/completions", json_reply(chat_completion(json.dumps(SCRIPT))))
    assert len(write(tmp_path, scenes=1)["scenes"]) == 1  # extra scenes are dropped
    assert failure(tmp_path, scenes=3) == "openai: asked for 3 scenes but the model wrote 2"


def test_openai_key_is_required_by_the_hosted_api_but_not_by_a_local_server(tmp_path, providers, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    providers.on("/v1/chat/completions", json_reply(chat_completion(json.dumps(SCRIPT))))
    write(tmp_path)  # a self-hosted endpoint: no key needed
    assert "authorization" not in providers.to("/v1/chat/completions")[0].headers
    monkeypatch.delenv("REELGRAPH_OPENAI_BASE_URL")
    assert failure(tmp_path) == "openai: set the environment variable OPENAI_API_KEY to use this provider"


# ---- Anthropic ---------------------------------------------------------------------------------------

def anthropic_message(content: list[dict[str, Any]], stop_reason: str = "tool_use") -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "an-story",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 120, "output_tokens": 300},
    }


def test_anthropic_forced_tool_call(tmp_path, providers):
    tool_use = {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "write_script", "input": SCRIPT}
    providers.on("/v1/messages", json_reply(anthropic_message([{"type": "text", "text": "Here it is."}, tool_use])))
    result = write(tmp_path, provider="anthropic")
    (seen,) = providers.to("/v1/messages")
    assert seen.headers["x-api-key"] == "sk-ant-test" and seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    body = seen.json()
    # the user file set only the story model; the others come from the packaged default
    assert body["model"] == "an-story" and body["max_tokens"] == 1000
    assert isinstance(body["system"], str) and body["messages"][0]["role"] == "user"
    assert body["tools"][0]["name"] == "write_script" and body["tools"][0]["input_schema"]["type"] == "object"
    assert body["tool_choice"] == {"type": "tool", "name": "write_script"}
    assert result["title"] == SCRIPT["title"] and len(result["scenes"]) == 2


def test_anthropic_rate_limit_and_errors(tmp_path, providers):
    limited = json_reply({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}},
                         429, **{"retry-after": "0"})
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "write_script", "input": SCRIPT}
    providers.on("/v1/messages", limited, json_reply(anthropic_message([tool_use])))
    assert write(tmp_path, provider="anthropic")["title"] == SCRIPT["title"]
    assert len(providers.to("/v1/messages")) == 2
    providers.on("/v1/messages", json_reply({"type": "error", "error": {"type": "not_found_error", "message": "model: an-story"}}, 404))
    assert failure(tmp_path, provider="anthropic") == "anthropic: HTTP 404: model: an-story"


def test_anthropic_reply_without_the_tool_call_fails(tmp_path, providers):
    providers.on("/v1/messages", json_reply(anthropic_message([{"type": "text", "text": "No."}], "end_turn")))
    assert failure(tmp_path, provider="anthropic") == "anthropic: the reply did not call the write_script tool (stop_reason 'end_turn')"
    bad = {"type": "tool_use", "id": "toolu_1", "name": "write_script", "input": {"title": "", "scenes": []}}
    providers.on("/v1/messages", json_reply(anthropic_message([bad])))
    assert failure(tmp_path, provider="anthropic").startswith(
        "anthropic: the model's script does not have the expected shape: title: String should have at least 1 character"
    )


# ---- Gemini ---------------------------------------------------------------------------------------

def gemini_reply(text: str, finish: str = "STOP", grounded: bool = False) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish, "index": 0}
    if grounded:
        candidate["groundingMetadata"] = {
            "webSearchQueries": ["why is the sky blue"],
            "groundingChunks": [{"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/abc", "title": "nasa.gov"}}],
            "groundingSupports": [],
        }
    return {"candidates": [candidate], "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 200}, "modelVersion": "ge-story"}


def test_gemini_json_mode_for_stories(tmp_path, providers):
    providers.on("/v1beta/models/ge-story:generateContent", json_reply(gemini_reply(json.dumps(SCRIPT))))
    result = write(tmp_path, provider="gemini")
    (seen,) = providers.to("/v1beta/models/ge-story:generateContent")
    assert seen.headers["x-goog-api-key"] == "AIza-test" and "key" not in seen.query
    body = seen.json()
    assert "tools" not in body
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["maxOutputTokens"] == 1000
    schema = config["responseSchema"]
    assert schema["type"] == "OBJECT" and schema["properties"]["scenes"]["items"]["properties"]["motion"]["type"] == "STRING"
    assert "additionalProperties" not in json.dumps(schema)
    assert body["systemInstruction"]["parts"][0]["text"] and body["contents"][0]["role"] == "user"
    assert result["scenes"][0]["narration"] == "Sunlight holds every colour."


def test_gemini_news_is_grounded_with_google_search(tmp_path, providers):
    text = "Based on current reporting:\n```json\n" + json.dumps(SCRIPT) + "\n```"
    providers.on("/v1beta/models/ge-news:generateContent", json_reply(gemini_reply(text, grounded=True)))
    result = write(tmp_path, provider="gemini", use_case="news")
    body = providers.to("/v1beta/models/ge-news:generateContent")[0].json()
    assert body["tools"] == [{"google_search": {}}]
    # Gemini refuses a tool together with a JSON mime type, so none is sent
    assert "responseMimeType" not in body["generationConfig"] and "responseSchema" not in body["generationConfig"]
    assert "search" in body["contents"][0]["parts"][0]["text"]
    assert result["title"] == SCRIPT["title"]


def test_gemini_errors_and_rate_limits(tmp_path, providers):
    path = "/v1beta/models/ge-story:generateContent"
    exhausted = json_reply({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}},
                           429, **{"Retry-After": "0"})
    providers.on(path, exhausted, json_reply(gemini_reply(json.dumps(SCRIPT))))
    assert write(tmp_path, provider="gemini")["title"] == SCRIPT["title"]
    assert len(providers.to(path)) == 2
    providers.on(path, json_reply({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}, 400))
    assert failure(tmp_path, provider="gemini") == "gemini: HTTP 400: API key not valid. Please pass a valid API key."
    providers.on(path, json_reply(gemini_reply("", "SAFETY")))
    assert failure(tmp_path, provider="gemini") == "gemini: generation stopped early (SAFETY)"
    providers.on(path, json_reply({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}))
    assert failure(tmp_path, provider="gemini") == "gemini: the prompt was blocked (PROHIBITED_CONTENT)"


# ---- configuration ---------------------------------------------------------------------------------

def test_invalid_config_names_the_file_and_the_key(tmp_path, providers):
    Path(providers_config_path()).write_text('[llm.openai]\nstroy = "typo"\n')
    message = failure(tmp_path)
    assert message.startswith(f"provider config {providers_config_path()}: llm.openai.stroy: Extra inputs are not permitted")
    Path(providers_config_path()).write_text("[llm\n")
    assert "is not valid TOML" in failure(tmp_path)


def test_the_model_from_config_enters_the_cache_key(providers):
    before = script_llm.environment()
    Path(providers_config_path()).write_text(CONFIG.replace('"oa-story"', '"oa-story-2"'))
    after = script_llm.environment()
    assert before != after
    assert before["llm"]["openai"]["story"] == "oa-story" and after["llm"]["openai"]["story"] == "oa-story-2"
    Path(providers_config_path()).write_text("not toml [")
    assert "llm_config_error" in script_llm.environment()  # still a key, never an exception


def test_llm_scripts_are_pinned_until_regenerated(engine, tmp_path, providers):
    providers.on("/v1/chat/completions", json_reply(chat_completion(json.dumps(SCRIPT))))
    registry = NodeRegistry(SCRIPT_TYPES)

    def run(nonce: int):
        document = {"name": "pin", "nodes": {"s": {"type": "script.llm", "nonce": nonce,
                                                   "inputs": {"topic": "sky", "provider": "openai"}}},
                    "outputs": {"scenes": {"link": ["s", "scenes"]}}}
        return engine.run(bind_recipe(parse_recipe(document), registry, base_dir=tmp_path))

    first = run(0)
    assert first.status == "succeeded", first.failures
    assert len(first.outputs["scenes"].elements) == 2
    assert run(0).executions[0].status == "cached"
    assert len(providers.to("/v1/chat/completions")) == 1  # pinned: the model is not asked again
    assert run(1).executions[0].status == "executed"  # regenerate
    assert len(providers.to("/v1/chat/completions")) == 2
