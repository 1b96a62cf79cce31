"""What every prompt the pool submits carries besides the graph: a UI-format workflow of that
graph in ``extra_data.extra_pnginfo.workflow`` (which ComfyUI embeds in what it saves, so outputs
drag back into ComfyUI and ``reelgraph import`` reads them back as the same graph), and the run's
priority as ComfyUI's queue ``number``. Against the protocol test server over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ffmpeg
import pytest
import requests
from PIL import Image
from reelgraph.comfy_workflows.placement import i2v_job, interpolation_job, still_job
from reelgraph.comfy_workflows.pool import ComfyInstance, ComfyJob, ComfyPool, JobResult
from reelgraph.comfy_workflows.schema import ObjectInfo
from reelgraph.comfy_workflows.testserver import ComfyTestServer, Faults
from reelgraph.graphs.comfy_api import recipe_to_api
from reelgraph.graphs.comfy_ui import import_workflow
from reelgraph.graphs.validate import parse_recipe
from reelgraph.tests.comfy_server_fixtures import WITH_MODELS, full_instance

WAN_DIRS = {"umt5_xxl_fp8_e4m3fn_scaled.safetensors": "text_encoders", "wan_2.1_vae.safetensors": "vae",
            "clip_vision_h.safetensors": "clip_vision", "wan2.1_i2v_480p_14B_fp16.safetensors": "diffusion_models"}


def start(info: ObjectInfo, root: Path, **options: Any) -> ComfyTestServer:
    return ComfyTestServer(info, root, faults=Faults(step_seconds=0.001), **options).start()


@pytest.fixture
def comfy(tmp_path: Path) -> Iterator[ComfyTestServer]:
    server = start(full_instance(WITH_MODELS), tmp_path / "comfy")
    yield server
    server.stop()


def still(tmp_path: Path) -> Path:
    path = tmp_path / "start.png"
    Image.new("RGB", (64, 112), (200, 60, 20)).save(path)
    return path


def run_job(server: ComfyTestServer, job: ComfyJob, dest: Path) -> JobResult:
    with ComfyPool([ComfyInstance(server.url, "gpu0", poll_interval=0.1)], health_interval=0.2) as pool:
        return pool.run(job, dest)


def submitted(server: ComfyTestServer, prompt_id: str) -> dict[str, Any]:
    """The prompt and extra_data as ComfyUI stored them (``/api/jobs/{id}``)."""
    return requests.get(f"{server.url}/api/jobs/{prompt_id}", timeout=10).json()["workflow"]


def same_graph(workflow: dict[str, Any], prompt: dict[str, Any], object_info: dict[str, Any]) -> None:
    """The UI workflow holds the prompt's nodes, widget values and links, and imports as that graph."""
    assert sorted(n["id"] for n in workflow["nodes"]) == sorted(int(i) for i in prompt)
    assert {str(n["id"]): n["type"] for n in workflow["nodes"]} == {i: n["class_type"] for i, n in prompt.items()}
    links = {(str(origin), slot, str(target)) for _, origin, slot, target, *_ in workflow["links"]}
    assert links == {(v[0], v[1], i) for i, n in prompt.items() for v in n["inputs"].values()
                     if isinstance(v, list) and len(v) == 2 and isinstance(v[1], int)}
    assert recipe_to_api(import_workflow(workflow, object_info)) == prompt


def test_every_prompt_carries_its_ui_workflow(comfy, tmp_path):
    info = full_instance(WITH_MODELS)
    jobs = {
        "i2v": i2v_job("motion[0]", "wan2.1", still(tmp_path), prompt="a fox", motion="zoom_in", seed=1, seconds=0.5,
                       width=64, height=112),
        "still": still_job("still", "sdxl", prompt="a fox", style="ink", seed=1, width=64, height=112),
    }
    results = {name: run_job(comfy, job, tmp_path / name) for name, job in jobs.items()}
    video = results["i2v"].files[0]
    jobs["interpolate"] = interpolation_job("smooth", "rife", video, source_fps=16.0, multiplier=2)
    results["interpolate"] = run_job(comfy, jobs["interpolate"], tmp_path / "interpolate")
    for result in results.values():
        stored = submitted(comfy, result.prompt_id)
        assert stored["prompt"] == result.workflow.prompt
        workflow = stored["extra_data"]["extra_pnginfo"]["workflow"]
        same_graph(workflow, result.workflow.prompt, info.raw)
        titles = {str(n["id"]): n["title"] for n in workflow["nodes"]}
        assert all(title.startswith(f"{result.workflow.node_map[i]}: ") for i, title in titles.items())
    models = {m["name"]: m for m in submitted(comfy, results["i2v"].prompt_id)["extra_data"]["extra_pnginfo"]
              ["workflow"]["models"]}
    assert {name: m["directory"] for name, m in models.items()} == WAN_DIRS
    assert all(m["url"].startswith("https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/") for m in models.values())


def test_outputs_embed_the_workflow_and_import_back_as_the_same_graph(comfy, tmp_path, cli):
    """SaveVideo's MP4 tags and SaveImage's PNG text chunks hold the prompt and the UI workflow;
    `reelgraph import FILE --object-info URL` (the instance's own schemas) gives the prompt's graph."""
    clip = run_job(comfy, i2v_job("motion[0]", "wan2.1", still(tmp_path), prompt="a fox", motion="zoom_in", seed=1,
                                  seconds=0.5, width=64, height=112), tmp_path / "clip")
    image = run_job(comfy, still_job("still", "sdxl", prompt="a fox", style="", seed=2, width=64, height=112),
                    tmp_path / "image")
    tags = ffmpeg.probe(str(clip.files[0]))["format"]["tags"]
    assert json.loads(tags["prompt"]) == clip.workflow.prompt
    with Image.open(image.files[0]) as opened:
        assert json.loads(opened.text["prompt"]) == image.workflow.prompt
    for result in (clip, image):
        assert json.loads(_embedded(result.files[0])) == submitted(comfy, result.prompt_id)["extra_data"][
            "extra_pnginfo"]["workflow"]
        target = tmp_path / f"{result.files[0].stem}.recipe.json"
        cli("import", str(result.files[0]), "--object-info", comfy.url, "-o", str(target), check_code=0)
        recipe = parse_recipe(target.read_bytes())
        assert recipe_to_api(recipe) == result.workflow.prompt


def _embedded(path: Path) -> str:
    if path.suffix == ".png":
        with Image.open(path) as opened:
            return opened.text["workflow"]
    return ffmpeg.probe(str(path))["format"]["tags"]["workflow"]


def test_vhs_outputs_carry_it_in_the_comment_tag_and_the_first_frame_png(tmp_path):
    """An instance without core CreateVideo/SaveVideo gets VHS_VideoCombine, which folds the
    metadata into the video's comment tag and writes a first-frame PNG beside it."""
    raw = {k: v for k, v in full_instance(WITH_MODELS).raw.items() if k not in ("CreateVideo", "SaveVideo")}
    server = start(ObjectInfo(raw), tmp_path / "vhs")
    try:
        result = run_job(server, i2v_job("motion[0]", "wan2.1", still(tmp_path), prompt="a fox", motion="zoom_in",
                                         seed=1, seconds=0.5, width=64, height=112), tmp_path / "out")
        [output] = result.outputs
        assert output.key == "gifs"
        comment = json.loads(ffmpeg.probe(str(result.files[0]))["format"]["tags"]["comment"])
        assert comment["prompt"] == result.workflow.prompt
        same_graph(comment["workflow"], result.workflow.prompt, raw)
        side = server.dirs["output"] / output.subfolder / output.extra["workflow"]
        with Image.open(side) as opened:
            assert json.loads(opened.text["workflow"]) == comment["workflow"]
    finally:
        server.stop()


def test_disable_metadata_leaves_outputs_bare(tmp_path):
    server = start(full_instance(WITH_MODELS), tmp_path / "bare", disable_metadata=True)
    try:
        image = run_job(server, still_job("still", "sdxl", prompt="a fox", style="", seed=3, width=64, height=112),
                        tmp_path / "image")
        with Image.open(image.files[0]) as opened:
            assert "workflow" not in opened.text and "prompt" not in opened.text
        assert "workflow" in submitted(server, image.prompt_id)["extra_data"]["extra_pnginfo"]  # still sent
    finally:
        server.stop()


def test_run_priority_reaches_comfyuis_queue(comfy, tmp_path, cli):
    """`reelgraph run --priority N` sends its prompts with a ComfyUI queue number below every
    default one (ComfyUI counts those up from 0); without it no number is sent."""
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({
        "reelgraph": 1,
        "nodes": {"still": {"type": "image.generate", "inputs": {"prompt": "a fox", "width": 64, "height": 112,
                                                                 "model": "sdxl", "seed": 1}}},
        "outputs": {"image": {"link": ["still", "image"]}},
    }), encoding="utf-8")
    cli("run", str(recipe), "--comfy", comfy.url, "--priority", "4", "--quiet", "--out", "urgent", check_code=0)
    recipe.write_text(recipe.read_text().replace('"seed": 1', '"seed": 2'), encoding="utf-8")
    cli("run", str(recipe), "--comfy", comfy.url, "--quiet", "--out", "plain", check_code=0)
    numbers = [entry["prompt"][0] for entry in requests.get(f"{comfy.url}/history", timeout=10).json().values()]
    assert len(numbers) == 2 and numbers[0] < -3e10 and numbers[1] >= 0
