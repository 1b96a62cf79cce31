"""script.llm offline and with user scripts: deterministic, split by paragraphs or sentences, and
script-first editing (one edited paragraph reruns only that scene downstream, through the engine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from reelgraph.engine.canonical import canonical_json
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline.images import NODE_TYPES as IMAGE_TYPES
from reelgraph.nodes.pipeline.script import NODE_TYPES as SCRIPT_TYPES
from reelgraph.nodes.pipeline.script import keywords, script_llm, split_script
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext
from reelgraph.tests.helpers import executed

MOTIONS = ["zoom_in", "pan_right", "zoom_out", "pan_left"]
STORY = """Coffee was first brewed in Ethiopia. A goat herder noticed his goats dancing after eating red berries.

By the fifteenth century, coffee houses filled Mecca and Cairo.

Traders carried the beans to Venice, and Europe fell in love.

Today, billions of cups are brewed every single day."""


def write(tmp_path: Path, **inputs: Any) -> dict[str, Any]:
    values = {"topic": "", "script": "", "use_case": "story", "provider": "offline", "scenes": 0,
              "seconds_per_scene": 5.0, "style": ""} | inputs
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return script_llm.run(NodeContext(work, "script", None), **values)


@pytest.fixture
def run(engine, tmp_path):
    registry = NodeRegistry([*BUILTIN_TYPES, *SCRIPT_TYPES, *IMAGE_TYPES])

    def go(document: dict[str, Any], params: dict[str, Any] | None = None):
        return engine.run(bind_recipe(parse_recipe(document), registry, params, base_dir=tmp_path))

    return go


def test_offline_topic_script_is_deterministic_and_complete(tmp_path):
    first = write(tmp_path, topic="the history of coffee", scenes=6, style="warm watercolor")
    again = write(tmp_path, topic="the history of coffee", scenes=6, style="warm watercolor")
    assert canonical_json(first) == canonical_json(again)
    assert first["title"] == "The history of coffee"
    assert first["script"] == {"title": first["title"], "scenes": first["scenes"]}
    scenes = first["scenes"]
    assert len(scenes) == 6
    assert [s["motion"] for s in scenes] == [MOTIONS[i % 4] for i in range(6)]
    for scene in scenes:
        assert list(scene) == ["narration", "caption", "search_query", "image_prompt", "motion", "seconds"]
        assert "coffee" in scene["narration"] and scene["seconds"] > 0
        assert set(scene["search_query"].split()) <= {w.strip(".,!?'").lower() for w in scene["narration"].split()}
        assert scene["image_prompt"].endswith(", warm watercolor")
        assert len(scene["caption"].rstrip("…").split()) <= 8
    assert len(write(tmp_path, topic="tea")["scenes"]) == 5  # the offline default
    assert [len(write(tmp_path, topic="tea", scenes=n)["scenes"]) for n in (1, 2, 12)] == [1, 2, 12]


def test_user_script_is_used_as_written_one_scene_per_paragraph(tmp_path):
    result = write(tmp_path, script=STORY, scenes=2, provider="openai")  # a script needs no LLM or key
    paragraphs = [" ".join(p.split()) for p in STORY.split("\n\n")]
    assert [s["narration"] for s in result["scenes"]] == paragraphs  # paragraphs win over `scenes`
    assert result["title"] == "Coffee was first brewed in Ethiopia"
    first = result["scenes"][0]
    assert first["caption"] == "Coffee was first brewed in Ethiopia"
    assert first["search_query"] == "coffee brewed ethiopia goat"
    # about 2.5 words a second of narration
    assert first["seconds"] == round(len(paragraphs[0].split()) / 2.5, 1)
    assert write(tmp_path, script=STORY, topic="Coffee")["title"] == "Coffee"


def test_one_paragraph_is_split_by_sentences(tmp_path):
    text = "One two three four five. Six seven eight nine ten! Eleven twelve thirteen fourteen fifteen? " \
           "Sixteen seventeen eighteen nineteen twenty. Twenty-one twenty-two."
    assert split_script(text, 0, 4.0) == [  # 4 s at 2.5 words/s: about 10 words a scene
        "One two three four five. Six seven eight nine ten!",
        "Eleven twelve thirteen fourteen fifteen? Sixteen seventeen eighteen nineteen twenty.",
        "Twenty-one twenty-two.",
    ]
    assert split_script(text, 2, 4.0) == [
        "One two three four five. Six seven eight nine ten! Eleven twelve thirteen fourteen fifteen?",
        "Sixteen seventeen eighteen nineteen twenty. Twenty-one twenty-two.",
    ]
    assert len(split_script(text, 50, 4.0)) == 5  # never more scenes than sentences
    assert len(write(tmp_path, script=text, seconds_per_scene=4.0)["scenes"]) == 3


def test_editing_one_paragraph_changes_only_that_scene_object(tmp_path):
    before = write(tmp_path, script=STORY, style="ink")["scenes"]
    edited = STORY.replace("Mecca and Cairo", "Istanbul and Cairo")
    after = write(tmp_path, script=edited, style="ink")["scenes"]
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if canonical_json(a) != canonical_json(b)]
    assert changed == [1]
    assert "Istanbul" in after[1]["narration"] and after[1]["motion"] == before[1]["motion"]


def test_script_first_editing_reruns_only_the_edited_scene_downstream(run, tmp_path):
    document = {
        "name": "edit",
        "params": {"script": {"type": "string", "default": STORY}},
        "nodes": {
            "script": {"type": "script.llm", "inputs": {"script": {"param": "script"}, "style": "ink"}},
            "prompt": {"type": "json.pick", "inputs": {"value": {"link": ["script", "scenes"]}, "path": "image_prompt"}},
            "image": {"type": "image.generate", "inputs": {"prompt": {"link": ["prompt", "value"]}, "width": 24, "height": 40}},
        },
        "outputs": {"images": {"link": ["image", "image"]}, "scenes": {"link": ["script", "scenes"]}},
    }
    first = run(document)
    assert first.status == "succeeded", first.failures
    assert len(first.outputs["images"].elements) == 4
    same = run(document)
    assert executed(same) == set()  # pinned: nothing reruns
    edited = run(document, {"script": STORY.replace("Venice", "Genoa")})
    assert edited.status == "succeeded"
    assert executed(edited) == {("script", None), ("prompt", 2), ("image", 2)}
    old, new = first.outputs["images"].elements, edited.outputs["images"].elements
    assert [a == b for a, b in zip(old, new, strict=True)] == [True, True, False, True]


def test_bad_inputs_fail_with_a_plain_cause(run):
    cases = [
        ({}, "inputs 'topic' and 'script' are both empty: give a topic or write a script"),
        ({"topic": "x", "use_case": "poem"}, "input 'use_case': 'poem' is not one of story, news, complex"),
        ({"topic": "x", "provider": "llama"}, "input 'provider': 'llama' is not one of offline, openai, anthropic, gemini"),
        ({"topic": "x", "scenes": -1}, "input 'scenes': -1 is outside 0..100"),
        ({"topic": "x", "seconds_per_scene": 0}, "input 'seconds_per_scene': 0.0 is outside 0.5..120"),
    ]
    for inputs, cause in cases:
        result = run({"name": "bad", "nodes": {"s": {"type": "script.llm", "inputs": inputs}}, "outputs": {"t": {"link": ["s", "title"]}}})
        (failure,) = result.failures
        assert failure.error["cause"] == cause


def test_keywords_skip_common_words_and_contractions():
    assert keywords("Let's talk about the Eiffel Tower's history in Paris") == ["eiffel", "tower", "history", "paris"]
    assert keywords("It is what it is") == ["it", "is", "what"]  # nothing but common words: the first ones
    assert json.dumps(keywords("Café crème à Paris")) == json.dumps(["café", "crème", "paris"])
