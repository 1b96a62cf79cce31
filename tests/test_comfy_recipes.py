"""Recipes with raw ComfyUI nodes (what `reelgraph import` makes): each connected group runs as
one prompt on a pool of ComfyUI test servers, over real HTTP/WebSocket, with the engine's cache."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from reelgraph.comfy_workflows.pool import ComfyInstance, ComfyPool
from reelgraph.comfy_workflows.testserver import ComfyTestServer
from reelgraph.engine import Engine, RunOptions, RunResult
from reelgraph.engine.comfy_groups import fuse_comfy_groups
from reelgraph.graphs.comfy_api import recipe_from_api
from reelgraph.graphs.errors import RecipeInvalid
from reelgraph.graphs.validate import BoundRecipe, bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.tests.comfy_server_fixtures import (
    NO_MODELS,
    SHARED_COMFY,
    WITH_MODELS,
    full_instance,
)

CHECKPOINT = "sd_xl_base_1.0.safetensors"
# A ComfyUI API-format txt2img, as the ComfyUI frontend exports it.
TXT2IMG: dict[str, Any] = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 4, "cfg": 7.0, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]},
          "_meta": {"title": "KSampler"}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT},
          "_meta": {"title": "Load Checkpoint"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}
MEMBERS = ["3", "4", "5", "6", "7", "8", "9"]


def registry() -> NodeRegistry:
    return NodeRegistry(BUILTIN_TYPES)


def imported(workflow: dict[str, Any], name: str = "txt2img", **extra: Any) -> dict[str, Any]:
    """What `reelgraph import` writes, plus ``extra`` recipe fields (outputs, more nodes)."""
    document = recipe_from_api(workflow, name=name).model_dump(mode="json", exclude_defaults=True)
    nodes = {**document["nodes"], **extra.pop("nodes", {})}
    return {**document, "nodes": nodes, **extra}


def bind(document: dict[str, Any], base: Path) -> BoundRecipe:
    return bind_recipe(parse_recipe(document), registry(), base_dir=base)


def run(engine: Engine, document: dict[str, Any], base: Path, **options: Any) -> RunResult:
    return engine.run(bind(document, base), RunOptions(workers=4, **options))


def statuses(result: RunResult) -> dict[str, str]:
    return {e.node: e.status for e in result.executions}


def history(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/history", timeout=10).json()


def plan(engine: Engine, document: dict[str, Any], base: Path, pool: ComfyPool | None = None) -> dict[str, tuple[str, str]]:
    """The plan as a run on ``pool`` sees it (keys hold the instances' versions)."""
    return {e.node: (e.status, e.reason) for e in engine.plan(bind(document, base), comfy=pool)}


@pytest.fixture
def pool(comfy: ComfyTestServer) -> Iterator[ComfyPool]:
    with ComfyPool([ComfyInstance(comfy.url, "gpu0", poll_interval=0.1)], health_interval=0.2) as handle:
        yield handle


def test_an_imported_workflow_runs_as_one_prompt_and_is_cached(engine, comfy, pool, tmp_path):
    document = imported(TXT2IMG, outputs={"image": {"link": ["9", 0]}})
    before = plan(engine, document, tmp_path)
    assert sorted(before) == MEMBERS and {s for s, _ in before.values()} == {"run"}
    assert before["3"][1] == "never ran (one ComfyUI prompt: 3+4+5+6+7+8+9)"

    first = run(engine, document, tmp_path, comfy=pool)
    assert first.status == "succeeded", first.failures
    assert statuses(first) == dict.fromkeys(MEMBERS, "executed")
    assert {e.type for e in first.executions if e.node == "3"} == {"comfy:KSampler"}
    assert len({e.cache_key for e in first.executions}) == 1  # one execution, recorded under each member
    [entry] = history(comfy.url).values()  # one prompt for the whole group
    sent = entry["prompt"][2]
    assert sorted(sent) == MEMBERS and sent["3"]["inputs"]["seed"] == 42
    assert sent["9"]["inputs"]["filename_prefix"].endswith("/ComfyUI")  # under this job's own folder
    assert sent["4"]["_meta"] == {"title": "Load Checkpoint"}
    [image] = first.outputs["image"].elements  # SaveImage's files: a list, one per image of the batch
    stored = engine.store.blob_path(image["$artifact"])
    assert image["ext"] == ".png"
    with Image.open(stored) as opened:
        assert opened.format == "PNG"
    saved = next(Path(comfy.dirs["output"]).rglob("ComfyUI_*.png"))
    assert saved.read_bytes() == stored.read_bytes()
    recorded = engine.records.last_key_docs("txt2img")
    assert sorted(node for node, _ in recorded) == MEMBERS
    # the key holds what the instance runs: its ComfyUI version and the schemas of the classes used
    versions = recorded[("3", None)]["fingerprint"]["ComfyUI versions"]
    assert [v["comfyui"] for v in versions] == [requests.get(f"{comfy.url}/system_stats", timeout=10)
                                                .json()["system"]["comfyui_version"]]
    assert versions[0]["packs"] == {}  # core classes only: the ComfyUI version covers them

    again = run(engine, document, tmp_path, comfy=pool)
    assert statuses(again) == dict.fromkeys(MEMBERS, "cached")
    assert len(history(comfy.url)) == 1  # nothing submitted
    assert {s for s, _ in plan(engine, document, tmp_path, pool).values()} == {"cached"}
    # planned without instances, the ones this home last ran on stand in (comfy_workflows/seen.py)
    assert {s for s, _ in plan(engine, document, tmp_path).values()} == {"cached"}
    (engine.home / "comfy" / "seen-instances.json.gz").unlink()  # a home that never ran on ComfyUI
    assert plan(engine, document, tmp_path)["3"] == ("run", "ComfyUI versions changed (one ComfyUI prompt: "
                                                            "3+4+5+6+7+8+9)")

    # node ids and titles never enter the key: renumbered and retitled, it is the same work
    renamed = {str(int(k) + 100): copy.deepcopy(v) for k, v in TXT2IMG.items()}
    for node in renamed.values():
        node["_meta"] = {"title": "renamed"}
        node["inputs"] = {k: [str(int(v[0]) + 100), v[1]] if isinstance(v, list) else v
                          for k, v in node["inputs"].items()}
    moved = run(engine, imported(renamed, outputs={"image": {"link": ["109", 0]}}), tmp_path, comfy=pool)
    assert set(statuses(moved).values()) == {"cached"} and len(history(comfy.url)) == 1

    regenerated = copy.deepcopy(document)
    regenerated["nodes"]["3"]["nonce"] = 1  # `run --regenerate 3`: a member's nonce enters the group's key
    assert {s for s, _ in plan(engine, regenerated, tmp_path).values()} == {"run"}
    forced = engine.plan(bind(document, tmp_path), force=frozenset({"8"}))  # `--force 8` forces the whole group
    assert {(e.status, e.reason) for e in forced} == {("run", "forced (one ComfyUI prompt: 3+4+5+6+7+8+9)")}

    edited = copy.deepcopy(TXT2IMG)
    edited["3"]["inputs"]["seed"] = 43  # one widget
    document = imported(edited, outputs={"image": {"link": ["9", 0]}})
    assert plan(engine, document, tmp_path)["3"][0] == "run"
    assert "input 'prompt' changed" in plan(engine, document, tmp_path)["9"][1]
    rerun = run(engine, document, tmp_path, comfy=pool)
    assert statuses(rerun) == dict.fromkeys(MEMBERS, "executed")
    entries = list(history(comfy.url).values())
    assert len(entries) == 2 and entries[1]["prompt"][2]["3"]["inputs"]["seed"] == 43


def test_a_reelgraph_node_feeds_a_group_and_another_consumes_its_output(engine, comfy, pool, tmp_path):
    """title card -> LoadImage -> ImageInvert -> SaveImage -> video.still: the card is uploaded
    (content-addressed, with its extension), the saved image flows on as a file."""
    workflow = {
        "10": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}},
        "11": {"class_type": "ImageInvert", "inputs": {"image": ["10", 0]}},
        "12": {"class_type": "SaveImage", "inputs": {"filename_prefix": "inverted", "images": ["11", 0]}},
    }
    document = imported(workflow, name="mixed", outputs={"clip": {"link": ["clip", "video"]},
                                                         "image": {"link": ["12", 0]}})
    document["nodes"]["10"]["inputs"]["image"] = {"link": ["card", "image"]}
    document["nodes"].update({
        "card": {"type": "image.title_card", "inputs": {"text": "hello", "width": 64, "height": 96}},
        "clip": {"type": "video.still", "inputs": {"image": {"link": ["12", 0]}, "seconds": 0.5, "fps": 10}},
    })
    planned = plan(engine, document, tmp_path)
    assert planned["card"][0] == "run"
    assert planned["10"] == ("waits", "its key depends on the new output of 'card' (one ComfyUI prompt: 10+11+12)")
    assert planned["clip"] == ("waits", "its key depends on the new output of 'card'")

    events: list[dict[str, Any]] = []
    result = run(engine, document, tmp_path, comfy=pool, on_event=events.append)
    assert result.status == "succeeded", result.failures
    assert statuses(result) == {"card": "executed", "10": "executed", "11": "executed", "12": "executed",
                                "clip": "executed"}
    assert events[0]["nodes"] == 5  # run_started counts the members, not the group
    started = [(e["node"], e["type"]) for e in events if e["event"] == "node_started"]
    assert sorted(started) == [("10", "comfy:LoadImage"), ("11", "comfy:ImageInvert"), ("12", "comfy:SaveImage"),
                               ("card", "image.title_card"), ("clip", "video.still")]
    assert {e["node"] for e in events if e["event"] == "node_finished"} == {"card", "10", "11", "12", "clip"}
    progress = {(e["node"], e["message"]) for e in events if e["event"] == "node_progress"}
    assert ("11", "ImageInvert on ComfyUI") in progress  # under the member ComfyUI was running
    [entry] = history(comfy.url).values()
    uploaded = entry["prompt"][2]["10"]["inputs"]["image"]
    assert uploaded.startswith("reelgraph/in/") and uploaded.endswith("/in0.png")
    card = next(e for e in result.executions if e.node == "card")
    card_doc = engine.store.get_action(card.cache_key).outputs["image"]
    assert (Path(comfy.dirs["input"]) / uploaded).read_bytes() == engine.store.blob_path(card_doc["$artifact"]).read_bytes()
    [clip] = result.outputs["clip"].elements  # video.still fanned out over SaveImage's list of one
    assert clip["ext"] == ".mp4"

    document["nodes"]["card"]["inputs"]["text"] = "changed"  # a new upload, so the group runs again
    again = run(engine, document, tmp_path, comfy=pool)
    assert statuses(again)["11"] == "executed" and len(history(comfy.url)) == 2


def test_a_list_entering_a_group_runs_one_prompt_per_element(engine, comfy, pool, tmp_path):
    document = imported(TXT2IMG, name="fan", outputs={"images": {"link": ["9", 0]}})
    document["nodes"]["6"]["inputs"]["text"] = {"link": ["lines", "items"]}
    document["nodes"]["lines"] = {"type": "text.split", "inputs": {"text": "a fox|a lake", "separator": "|"}}
    result = run(engine, document, tmp_path, comfy=pool)
    assert result.status == "succeeded", result.failures
    assert sorted(e.element for e in result.executions if e.node == "3") == [0, 1]
    assert sorted(entry["prompt"][2]["6"]["inputs"]["text"] for entry in history(comfy.url).values()) == [
        "a fox", "a lake"]
    assert len(result.outputs["images"].elements) == 2


def test_a_refused_widget_is_reported_against_its_member_before_submission(engine, comfy, pool, tmp_path):
    bad = copy.deepcopy(TXT2IMG)
    bad["3"]["inputs"]["sampler_name"] = "no_such_sampler"
    result = run(engine, imported(bad), tmp_path, comfy=pool)
    by_node = {e.node: e for e in result.executions}
    assert by_node["3"].status == "failed"
    assert by_node["3"].error["node"] == "3"
    assert by_node["3"].error["cause"].startswith("recipe node '3' (ComfyUI node 3 KSampler): input 'sampler_name': "
                                                  "'no_such_sampler' is not one of the allowed values")
    assert {n: e.status for n, e in by_node.items() if n != "3"} == dict.fromkeys(["4", "5", "6", "7", "8", "9"],
                                                                               "skipped")
    assert by_node["9"].error["cause"] == "not run: node '3' of the same ComfyUI prompt failed"
    assert history(comfy.url) == {}


def test_node_errors_and_execution_errors_name_the_member(engine, comfy, pool, tmp_path):
    # the model file disappears behind the pool's back: ComfyUI answers node_errors for node 4
    requests.post(f"{comfy.url}/admin/object_info", json={"path": str(SHARED_COMFY / NO_MODELS)}, timeout=10)
    refused = run(engine, imported(TXT2IMG), tmp_path, comfy=pool)
    failed = {e.node: e.error["cause"] for e in refused.failures}
    assert list(failed) == ["4"]
    assert failed["4"].startswith("ComfyUI instance gpu0 refused the workflow: recipe node '4' (ComfyUI node 4 "
                                  f"CheckpointLoaderSimple): model file {CHECKPOINT} is not on instance gpu0")

    requests.post(f"{comfy.url}/admin/object_info", json={"path": str(_full_dump(tmp_path))}, timeout=10)
    requests.post(f"{comfy.url}/admin/faults", json={"fail_on": {"VAEDecode": "decoder exploded"}}, timeout=10)
    with ComfyPool([ComfyInstance(comfy.url, "gpu0", poll_interval=0.1)]) as fresh:  # reads the restored schemas
        crashed = run(engine, imported(TXT2IMG), tmp_path, comfy=fresh)
    [failure] = crashed.failures
    assert failure.node == "8" and failure.error["step"] == "execute"
    assert "recipe node '8' (ComfyUI node 8 VAEDecode): failed with RuntimeError: decoder exploded" in \
        failure.error["cause"]
    assert {e.status for e in crashed.executions if e.node != "8"} == {"skipped"}


def _full_dump(folder: Path) -> Path:
    path = folder / "full-object-info.json"
    path.write_text(json.dumps(full_instance(WITH_MODELS).raw), encoding="utf-8")
    return path


def test_without_a_pool_every_member_fails_with_the_plain_reason(engine, tmp_path):
    document = imported(TXT2IMG, outputs={"clip": {"link": ["clip", "video"]}})
    document["nodes"]["clip"] = {"type": "video.still", "inputs": {"image": {"link": ["9", 0]}, "seconds": 0.5}}
    assert {s for s, _ in plan(engine, document, tmp_path).values()} == {"run", "waits"}
    result = run(engine, document, tmp_path)
    errors = {e.node: e.error for e in result.executions if e.node in MEMBERS}
    assert errors["3"] == {"node": "3", "step": "dispatch", "cause": "comfy:KSampler is a ComfyUI node; it runs on "
                           "a ComfyUI backend, and this engine has none configured"}
    assert {e.status for e in result.executions} == {"failed", "skipped"}
    assert next(e for e in result.executions if e.node == "clip").status == "skipped"


def test_links_the_rewrite_cannot_honour_are_reported_as_recipe_errors(tmp_path):
    document = imported(TXT2IMG, outputs={"latent": {"link": ["3", 0]}, "image": {"link": ["9", 1]}})
    document["nodes"]["still"] = {"type": "video.still", "inputs": {"image": {"link": ["9", 0]}}}
    document["nodes"]["text"] = {"type": "text.template", "inputs": {"template": {"link": ["9", 0]}}}
    with pytest.raises(RecipeInvalid) as caught:
        fuse_comfy_groups(bind(document, tmp_path))
    messages = {(e.path, e.message) for e in caught.value.errors}
    assert ("outputs.image", ("links to slot 1 of ComfyUI node '9' (SaveImage); outside ComfyUI a node's files "
                              "are slot 0 of the output node that saves them")) in messages
    assert ("nodes.text.inputs.template", ("ComfyUI node '9' (SaveImage) saves image files but input 'template' "
                                           "takes string")) in messages
    assert not any(path == "nodes.still.inputs.image" for path, _ in messages)
    # KSampler's slot 0 for a recipe output: taken as files, which the instance must confirm (not a saver)
    assert not any(path == "outputs.latent" for path, _ in messages)


def test_a_reelgraph_node_between_members_of_one_group_is_refused(tmp_path):
    """9 -> still -> 20 and 8 -> 21 <- 20: no cycle node by node, but the group would feed itself."""
    document = imported(TXT2IMG)
    document["nodes"].update({
        "still": {"type": "video.still", "inputs": {"image": {"link": ["9", 0]}}},
        "20": {"type": "comfy:LoadImage", "inputs": {"image": {"link": ["still", "video"]}}},
        "21": {"type": "comfy:ImageBatch", "inputs": {"image1": {"link": ["20", 0]}, "image2": {"link": ["8", 0]}}},
    })
    with pytest.raises(RecipeInvalid) as caught:
        fuse_comfy_groups(bind(document, tmp_path))
    assert [(e.node, e.message) for e in caught.value.errors] == [
        ("still", ("ComfyUI nodes 3, 4, 5, 6, 7, 8, 9, 20, 21 run as one prompt, but node 'still' both depends "
                   "on that prompt and feeds it"))]


def test_the_cli_imports_plans_and_runs_a_workflow(cli, comfy, tmp_path):
    (tmp_path / "wf.json").write_text(json.dumps(TXT2IMG), encoding="utf-8")
    cli("import", "wf.json", "-o", "recipe.json", check_code=0)
    document = json.loads((tmp_path / "recipe.json").read_text())
    assert document["outputs"] == {"saveimage_9": {"link": ["9", 0]}}  # what ComfyUI saves: the recipe's output
    planned = cli("plan", "recipe.json", check_code=0)
    assert "run     3 (comfy:KSampler): never ran (one ComfyUI prompt: 3+4+5+6+7+8+9)" in planned.stdout
    cli("run", "recipe.json", "--comfy", comfy.url, "--out", "out", "--report", "report.json", "-q", check_code=0)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counts"]["executed"] == 7 and len(report["outputs"]["saveimage_9"]) == 1
    assert Path(report["outputs"]["saveimage_9"][0]).suffix == ".png"
    again = cli("run", "recipe.json", "--comfy", comfy.url, "--out", "out2", "--report", "again.json", "-q",
                check_code=0)
    assert json.loads((tmp_path / "again.json").read_text())["counts"]["cached"] == 7, again.stdout
    # without an instance (the GPU box gone), what it made is still reused: plan and run say cached
    offline_plan = cli("plan", "recipe.json", check_code=0)
    assert "run " not in offline_plan.stdout
    assert "ComfyUI-made results are keyed with the instances this home last ran on (recorded " in offline_plan.stderr
    cli("run", "recipe.json", "--out", "out3", "--report", "offline.json", "-q", check_code=0)
    assert json.loads((tmp_path / "offline.json").read_text())["counts"]["cached"] == 7


def test_validate_reports_wiring_a_comfy_group_cannot_honour(cli, tmp_path):
    document = imported(TXT2IMG, outputs={"image": {"link": ["9", 1]}})
    (tmp_path / "bad.json").write_text(json.dumps(document), encoding="utf-8")
    checked = cli("validate", "bad.json")
    assert checked.returncode == 2, checked.stderr
    assert "outputs.image" in checked.stderr and "slot 0 of the output node" in checked.stderr


KLING_WORKFLOW: dict[str, Any] = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}},
    "2": {"class_type": "KlingImage2VideoNode", "inputs": {
        "start_frame": ["1", 0], "prompt": "waves", "negative_prompt": "", "model_name": "kling-v2-1", "cfg_scale": 0.8,
        "mode": "std", "aspect_ratio": "9:16", "duration": "5"}},
    "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "kling", "format": "auto",
                                                "codec": "auto"}},
}


def test_a_comfy_org_api_node_in_a_group_gets_the_key_from_the_environment(engine, comfy, pool, tmp_path,
                                                                          monkeypatch):
    document = imported(KLING_WORKFLOW, name="kling", outputs={"clip": {"link": ["3", 0]}})
    document["nodes"]["1"]["inputs"]["image"] = {"link": ["card", "image"]}
    document["nodes"]["card"] = {"type": "image.title_card", "inputs": {"text": "sea", "width": 72, "height": 128}}
    monkeypatch.delenv("COMFY_ORG_API_KEY", raising=False)
    refused = run(engine, document, tmp_path, comfy=pool)
    assert refused.status == "failed" and len(history(comfy.url)) == 0  # refused before submission
    blamed = {e.node: e.error["cause"] for e in refused.failures}
    assert "2" in blamed and "COMFY_ORG_API_KEY" in blamed["2"] and "Comfy.org API node" in blamed["2"]

    monkeypatch.setenv("COMFY_ORG_API_KEY", "comfyui-test-key")
    result = run(engine, document, tmp_path, comfy=pool)
    assert result.status == "succeeded", result.failures  # the test server fails API nodes without a key
    [clip] = result.outputs["clip"].elements
    assert clip["ext"] == ".mp4"
    # a key is never part of the cache key: a new key reuses the result
    monkeypatch.setenv("COMFY_ORG_API_KEY", "another-key")
    assert set(statuses(run(engine, document, tmp_path, comfy=pool)).values()) == {"cached"}
