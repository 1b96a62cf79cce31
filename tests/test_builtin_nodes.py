"""Built-in node types through the engine: results, and failures that name the cause."""

from __future__ import annotations

import subprocess

import pytest


def single(run_recipe, node_type: str, inputs: dict, output: str):
    return run_recipe({"name": "one", "nodes": {"n": {"type": node_type, "inputs": inputs}}, "outputs": {"o": {"link": ["n", output]}}})


def test_template_fills_names_and_keeps_escaped_braces(run_recipe):
    result = single(run_recipe, "text.template", {"template": "{{x}} {text}: {a}", "text": "t", "values": {"literal": {"a": 1}}}, "text")
    assert result.outputs["o"].elements == ["{x} t: 1"]


def test_template_refuses_unknown_placeholders_and_attribute_access(run_recipe):
    for template in ("{missing}", "{text.__class__}"):
        result = single(run_recipe, "text.template", {"template": template, "text": "t"}, "text")
        if template == "{missing}":
            assert result.failures[0].error["cause"] == "template uses {missing} but no value for it was given"
        else:
            assert result.outputs["o"].elements == ["{text.__class__}"]  # not a placeholder: left as written


def test_json_pick_and_items(run_recipe):
    value = {"scenes": [{"text": "a"}, {"text": "b"}]}
    assert single(run_recipe, "json.pick", {"value": {"literal": value}, "path": "scenes.1.text"}, "value").outputs["o"].elements == ["b"]
    failed = single(run_recipe, "json.pick", {"value": {"literal": value}, "path": "scenes.5"}, "value")
    assert failed.failures[0].error["cause"] == "path 'scenes.5' does not exist in the value"
    items = single(run_recipe, "json.items", {"value": [1, 2, 3]}, "items")
    assert items.outputs["o"].is_list and items.outputs["o"].elements == [1, 2, 3]


def test_split_and_join(run_recipe):
    document = {
        "name": "sj",
        "nodes": {
            "s": {"type": "text.split", "inputs": {"text": " a ;; b;c ", "separator": ";"}},
            "j": {"type": "text.join", "inputs": {"items": {"link": ["s", "items"]}, "separator": "+"}},
        },
        "outputs": {"j": {"link": ["j", "text"]}},
    }
    assert run_recipe(document).outputs["j"].elements == ["a+b+c"]


def test_title_card_rejects_odd_sizes_and_bad_colours(run_recipe):
    odd = single(run_recipe, "image.title_card", {"text": "x", "width": 65, "height": 64}, "image")
    assert "must be even" in odd.failures[0].error["cause"]
    colour = single(run_recipe, "image.title_card", {"text": "x", "width": 64, "height": 64, "color": "blurple"}, "image")
    assert colour.failures[0].error["cause"] == "input 'color': 'blurple' is not a colour (use #rrggbb or a CSS name)"


@pytest.mark.skipif(not __import__("shutil").which("ffprobe"), reason="ffmpeg is not installed")
def test_still_has_exact_frame_count_and_concat_copies_streams(run_recipe, engine):
    document = {
        "name": "clips",
        "nodes": {
            "card": {"type": "image.title_card", "inputs": {"text": "x", "width": 64, "height": 64}},
            "a": {"type": "video.still", "inputs": {"image": {"link": ["card", "image"]}, "seconds": 0.5, "fps": 12}},
            "b": {"type": "video.still", "inputs": {"image": {"link": ["card", "image"]}, "seconds": 0.25, "fps": 12}},
        },
        "outputs": {"a": {"link": ["a", "video"]}, "b": {"link": ["b", "video"]}},
    }
    result = run_recipe(document)
    for name, frames in (("a", 6), ("b", 3)):
        path = engine.store.blob_path(result.outputs[name].elements[0]["$artifact"])
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames,codec_name,pix_fmt", "-of", "csv=p=0", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        assert probe == f"h264,yuv420p,{frames}"


def test_comfyui_nodes_fail_with_a_plain_reason_until_a_backend_exists(run_recipe):
    result = run_recipe({"name": "c", "nodes": {"k": {"type": "comfy:KSampler", "inputs": {"steps": 4}}}})
    (failure,) = result.failures
    assert failure.error == {
        "node": "k",
        "step": "dispatch",
        "cause": "comfy:KSampler is a ComfyUI node; it runs on a ComfyUI backend, and this engine has none configured",
    }


def test_json_values_feed_typed_inputs_and_are_checked_when_the_node_runs(run_recipe):
    document = {
        "name": "picks",
        "nodes": {
            "items": {"type": "json.items", "inputs": {"value": {"literal": [{"s": 1.5}, {"s": 2}, {"s": "x"}]}}},
            "pick": {"type": "json.pick", "inputs": {"value": {"link": ["items", "items"]}, "path": "s"}},
            "total": {"type": "number.sum", "inputs": {"values": {"link": ["pick", "value"]}}},
            "card": {"type": "image.title_card", "inputs": {"text": {"link": ["pick", "value"]}, "width": 64, "height": 64}},
        },
        "outputs": {"total": {"link": ["total", "sum"]}, "card": {"link": ["card", "image"]}},
    }
    result = run_recipe(document)
    by_key = {(e.node, e.element): e for e in result.executions}
    assert by_key[("total", None)].status == "failed"
    assert by_key[("total", None)].error["cause"] == "input 'values' takes list of number, got str 'x'"
    assert by_key[("card", 2)].status == "executed"  # "x" is a string: fine for a text input
    assert by_key[("card", 0)].error["cause"] == "input 'text' takes string, got float 1.5"
