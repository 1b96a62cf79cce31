"""Lossless ComfyUI API-format import/export for graphs made only of ComfyUI nodes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reelgraph.graphs.comfy_api import recipe_from_api, recipe_to_api
from reelgraph.graphs.errors import RecipeInvalid
from reelgraph.graphs.validate import bind_recipe, parse_recipe

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "comfyui.md"

SDXL_STILL = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}, "_meta": {"title": "Checkpoint"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 768, "height": 1344, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk, {braces} and \"quotes\"", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 2**50 + 3, "steps": 25, "cfg": 6.5, "sampler_name": "euler",
          "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "reel/still", "images": ["8", 0]}, "is_changed": ["x"]},
    "10:3": {"class_type": "Custom Node (pack)", "inputs": {"options": {"mode": "a", "list": [1, 2]}, "values": [1.5, 2.5, 3.5]}},
}


def round_trip(workflow: dict) -> dict:
    recipe = recipe_from_api(workflow, name="wf")
    reparsed = parse_recipe(json.dumps(recipe.to_json()))  # through the recipe's JSON form
    return recipe_to_api(reparsed)


def test_api_recipe_api_is_identical(registry):
    assert round_trip(SDXL_STILL) == SDXL_STILL
    recipe = recipe_from_api(SDXL_STILL, name="sdxl")
    assert recipe.nodes["3"].type == "comfy:KSampler"
    assert recipe.nodes["3"].inputs["model"].link == ("4", 0)
    bound = bind_recipe(recipe, registry)  # ComfyUI nodes validate structurally
    assert set(bound.graph.predecessors("3")) == {"4", "5", "6", "7"}


def test_prompt_body_is_accepted():
    assert round_trip({"prompt": SDXL_STILL, "client_id": "x"}) == SDXL_STILL


def test_export_refuses_reelgraph_nodes_and_ambiguous_literals():
    recipe = parse_recipe({"nodes": {"t": {"type": "text.template", "inputs": {"template": "x"}}}})
    with pytest.raises(RecipeInvalid, match="reelgraph node type"):
        recipe_to_api(recipe)
    recipe = parse_recipe({"nodes": {"n": {"type": "comfy:Foo", "inputs": {"pair": ["a", 1]}}}})
    with pytest.raises(RecipeInvalid, match="would read as a link"):
        recipe_to_api(recipe)


def test_comfy_links_need_slot_numbers(registry):
    recipe = parse_recipe({
        "nodes": {
            "a": {"type": "comfy:CheckpointLoaderSimple", "inputs": {}},
            "b": {"type": "comfy:VAEDecode", "inputs": {"vae": {"link": ["a", "VAE"]}}},
        }
    })
    with pytest.raises(RecipeInvalid, match="by slot number"):
        bind_recipe(recipe, registry)


def test_params_are_substituted_on_export():
    recipe = parse_recipe({
        "params": {"steps": {"type": "integer", "default": 20}},
        "nodes": {"k": {"type": "comfy:KSampler", "inputs": {"steps": {"param": "steps"}}}},
    })
    assert recipe_to_api(recipe)["k"]["inputs"]["steps"] == 20
    assert recipe_to_api(recipe, {"steps": 8})["k"]["inputs"]["steps"] == 8


def test_reference_workflows_round_trip():
    if not REFERENCE.is_file():
        pytest.skip(f"../shared/reference/comfyui.md not found at {REFERENCE}; reference workflows not checked")
    blocks = re.findall(r"```json\n(.*?)```", REFERENCE.read_text(), flags=re.S)
    workflows = []
    for block in blocks:
        try:
            document = json.loads(block)
        except ValueError:
            continue
        if isinstance(document, dict) and document and all(
            isinstance(v, dict) and "class_type" in v for v in document.values()
        ):
            workflows.append(document)
    assert len(workflows) >= 5
    for workflow in workflows:
        assert round_trip(workflow) == workflow


def test_cli_import_then_export(cli, tmp_path):
    source = tmp_path / "wf.json"
    source.write_text(json.dumps(SDXL_STILL))
    cli("import", str(source), "-o", "recipe.json", check_code=0)
    assert json.loads((tmp_path / "recipe.json").read_text())["name"] == "wf"
    cli("validate", "recipe.json", check_code=0)
    exported = json.loads(cli("export", "--format", "comfy-api", "recipe.json", check_code=0).stdout)
    assert exported == SDXL_STILL
