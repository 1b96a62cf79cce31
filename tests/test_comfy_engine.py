"""Comfy placement end to end: recipes run through the engine, their GPU nodes through a pool of
ComfyUI test servers over real HTTP/WebSocket, outputs probed with ffprobe."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import ffmpeg
import pytest
import requests
from PIL import Image
from reelgraph.comfy_workflows import compiler
from reelgraph.comfy_workflows.errors import Interrupted
from reelgraph.comfy_workflows.instances import ManagedInstance, Supervisor
from reelgraph.comfy_workflows.placement import i2v_job
from reelgraph.comfy_workflows.pool import ComfyInstance, ComfyPool
from reelgraph.comfy_workflows.schema import ObjectInfo
from reelgraph.comfy_workflows.testserver import ComfyTestServer, Faults
from reelgraph.engine import RunOptions, RunResult
from reelgraph.engine.outputs import export_outputs
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline import NODE_TYPES as PIPELINE_TYPES
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.tests.comfy_server_fixtures import (
    NO_MODELS,
    SHARED_COMFY,
    WITH_MODELS,
    dump,
    full_instance,
    full_instance_file,
    write_comfy_shim,
)

SCENES = ["a red fox", "a blue lake", "a green hill"]
MODEL_FILES = {
    "wan2.1": ["clip_vision_h.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
               "wan2.1_i2v_480p_14B_fp16.safetensors", "wan_2.1_vae.safetensors"],
    "wan2.2": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
               "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", "wan_2.1_vae.safetensors"],
    "hunyuan": ["clip_l.safetensors", "hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors",
                "hunyuan_video_vae_bf16.safetensors", "llava_llama3_fp8_scaled.safetensors",
                "llava_llama3_vision.safetensors"],
    "kling": [],
}


def recipe(model: str = "wan2.1", scenes: list[str] = SCENES, **motion: Any) -> dict[str, Any]:
    return {
        "reelgraph": 1,
        "name": "comfy-scenes",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": "|".join(scenes), "separator": "|"}},
            "still": {"type": "image.generate", "inputs": {"prompt": {"link": ["split", "items"]}, "width": 64,
                                                           "height": 112}},
            "motion": {"type": "video.i2v", "inputs": {"image": {"link": ["still", "image"]},
                                                       "prompt": {"link": ["split", "items"]}, "seconds": 0.5,
                                                       "fps": 10, "width": 64, "height": 112, "model": model, **motion}},
        },
        "outputs": {"clips": {"link": ["motion", "video"]}, "placements": {"link": ["motion", "placement"]}},
    }


def run(engine, document: dict[str, Any], tmp_path: Path, **options: Any) -> RunResult:
    registry = NodeRegistry([*BUILTIN_TYPES, *PIPELINE_TYPES])
    bound = bind_recipe(parse_recipe(document), registry, base_dir=tmp_path)
    return engine.run(bound, RunOptions(workers=6, **options))


def pool_of(*servers: ComfyTestServer, **options: Any) -> ComfyPool:
    return ComfyPool([ComfyInstance(s.url, f"gpu{i}", poll_interval=0.1) for i, s in enumerate(servers)],
                     health_interval=0.2, **options)


def probe(path: str) -> dict[str, Any]:
    return ffmpeg.probe(path, count_frames=None)["streams"][0]


def history(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/history", timeout=10).json()


def admin(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/admin/state", timeout=10).json()


def texts(entry: dict[str, Any]) -> list[str]:
    """The prompts a ComfyUI history entry's text encoders got (Wan/Hunyuan/Kling spell it differently)."""
    return [node["inputs"].get("text") or node["inputs"].get("prompt") for node in entry["prompt"][2].values()
            if node["class_type"] in ("CLIPTextEncode", "TextEncodeHunyuanVideo_ImageToVideo", "KlingImage2VideoNode")]


def executed(result: RunResult, node: str) -> list[int | None]:
    return sorted(e.element for e in result.executions if e.node == node and e.status == "executed")


@pytest.mark.parametrize("model", ["wan2.1", "wan2.2", "hunyuan", "kling"])
def test_each_model_is_one_input_and_the_engine_treats_them_alike(engine, comfy, tmp_path, monkeypatch, model):
    monkeypatch.setenv("COMFY_ORG_API_KEY", "test-key")
    with pool_of(comfy) as pool:
        result = run(engine, recipe(model), tmp_path, comfy=pool)
        assert result.status == "succeeded", result.failures
        written = export_outputs(result.outputs, tmp_path / "out", engine.store)
        for clip in written["clips"]:
            stream = probe(clip)
            assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 64, 112)
            assert (stream["r_frame_rate"], int(stream["nb_read_frames"])) == ("10/1", 5)
        placements = [json.loads(Path(p).read_text()) for p in written["placements"]]
        assert {p["instance"] for p in placements} == {"gpu0"} and {p["model"] for p in placements} == {model}
        assert all(p["comfy_model_files"] == MODEL_FILES[model] and p["comfyui_version"] == "0.26.0" for p in placements)
        entries = history(comfy.url)
        assert sorted(p["prompt_id"] for p in placements) == sorted(entries)
        sent = sorted(text for entry in entries.values() for text in texts(entry) if "camera" in (text or ""))
        assert sent == sorted(f"{scene}. Slow camera push in" for scene in SCENES)
        if model == "kling":  # the key reached the API node (it ran) but is not kept with the job
            job = requests.get(f"{comfy.url}/api/jobs/{placements[0]['prompt_id']}", timeout=10).json()
            assert "api_key_comfy_org" not in job["workflow"]["extra_data"]

        again = run(engine, recipe(model), tmp_path, comfy=pool)
        assert again.status == "succeeded" and executed(again, "motion") == []
        assert len(history(comfy.url)) == 3  # nothing sent again


def test_still_motion_and_interpolation_all_on_comfy(engine, comfy, tmp_path):
    document = {
        "reelgraph": 1,
        "nodes": {
            "still": {"type": "image.generate", "inputs": {"prompt": "a lighthouse", "style": "ink", "width": 64,
                                                           "height": 112, "model": "sdxl"}},
            "motion": {"type": "video.i2v", "inputs": {"image": {"link": ["still", "image"]}, "seconds": 0.5,
                                                       "fps": 10, "width": 64, "height": 112, "model": "wan2.1"}},
            "smooth": {"type": "video.interpolate", "inputs": {"video": {"link": ["motion", "video"]}, "fps": 20,
                                                               "method": "rife"}},
        },
        "outputs": {"still": {"link": ["still", "image"]}, "clip": {"link": ["smooth", "video"]},
                    "how": {"link": ["smooth", "placement"]}},
    }
    with pool_of(comfy) as pool:
        result = run(engine, document, tmp_path, comfy=pool)
    assert result.status == "succeeded", result.failures
    written = export_outputs(result.outputs, tmp_path / "out", engine.store)
    still = probe(written["still"])
    assert (still["width"], still["height"]) == (64, 112)
    clip = probe(written["clip"])
    assert (clip["width"], clip["height"], clip["r_frame_rate"], int(clip["nb_read_frames"])) == (64, 112, "20/1", 10)
    how = json.loads(Path(written["how"]).read_text())
    assert (how["placement"], how["method"], how["multiplier"]) == ("comfy", "rife", 2)
    classes = [{n["class_type"] for n in e["prompt"][2].values()} for e in history(comfy.url).values()]
    assert ["CheckpointLoaderSimple" in c for c in classes] == [True, False]
    assert ["WanImageToVideo" in c for c in classes] == [False, True]
    assert ["RIFE VFI" in c for c in classes] == [False, True]  # fused with the i2v that feeds it
    sdxl = next(n for n in next(iter(history(comfy.url).values()))["prompt"][2].values()
                if n["class_type"] == "CLIPTextEncode" and n["inputs"]["text"])
    assert sdxl["inputs"]["text"] == "a lighthouse, ink"


def test_without_an_instance_the_node_says_how_to_get_one(engine, tmp_path):
    result = run(engine, recipe("wan2.2", SCENES[:1]), tmp_path)
    [failure] = result.failures
    assert failure.error == {"node": "motion", "step": "execute", "cause": "video.i2v model 'wan2.2' needs a ComfyUI "
                             "instance: start one with `reelgraph comfy up` or pass `--comfy URL`"}


def test_unknown_model_and_missing_key_fail_before_submission(engine, comfy, tmp_path, monkeypatch):
    monkeypatch.delenv("COMFY_ORG_API_KEY", raising=False)
    with pool_of(comfy) as pool:
        bad = run(engine, recipe("sora", SCENES[:1]), tmp_path, comfy=pool)
        kling = run(engine, recipe("kling", SCENES[:1]), tmp_path, comfy=pool)
    assert bad.failures[0].error["cause"].startswith("input 'model': 'sora' is not one of kenburns, wan2.1, wan2.2, ")
    assert kling.failures[0].error["cause"] == ("video.i2v model 'kling' (a Comfy.org API node): set the environment "
                                                "variable COMFY_ORG_API_KEY to use this provider")
    assert history(comfy.url) == {}


def test_missing_model_is_refused_before_submission_and_named_in_the_report(engine, tmp_path):
    with ComfyTestServer(dump(NO_MODELS), tmp_path / "bare") as bare, pool_of(bare) as pool:
        result = run(engine, recipe("wan2.1"), tmp_path, comfy=pool)
        assert history(bare.url) == {}
    assert sorted(f.element for f in result.failures if f.node == "motion") == [0, 1, 2]
    for failure in result.failures:
        assert failure.error["step"] == "execute"
        assert failure.error["cause"].startswith(f"recipe node 'motion[{failure.element}]' (ComfyUI node ")
        assert "model file wan2.1_i2v_480p_14B_fp16.safetensors is not on instance gpu0" in failure.error["cause"]


def test_node_errors_are_reported_per_recipe_node(engine, comfy, tmp_path):
    """Model files removed after the pool read the instance's schemas: ComfyUI refuses with
    node_errors, mapped back to the scene; the pool re-reads the schemas, so later scenes are
    refused before submission with the same plain words."""
    with pool_of(comfy) as pool:
        requests.post(f"{comfy.url}/admin/object_info", json={"path": str(SHARED_COMFY / NO_MODELS)}, timeout=10)
        result = run(engine, recipe("wan2.1"), tmp_path, comfy=pool)
    causes = {f.element: f.error["cause"] for f in result.failures if f.node == "motion"}
    assert set(causes) == {0, 1, 2}
    assert any(c.startswith("ComfyUI instance gpu0 refused the workflow: recipe node 'motion[") for c in causes.values())
    for element, cause in causes.items():
        assert f"recipe node 'motion[{element}]' (ComfyUI node " in cause
        assert "model file wan2.1_i2v_480p_14B_fp16.safetensors is not on instance gpu0" in cause
    assert requests.get(f"{comfy.url}/queue", timeout=10).json() == {"queue_running": [], "queue_pending": []}


def test_a_crash_mid_run_restarts_the_instance_and_loses_no_finished_scene(engine, tmp_path):
    """kill -9 the ComfyUI process while a scene runs: the supervisor starts it again, the lost
    prompts are resubmitted, the run completes, and scenes finished before the crash are not redone."""
    shim = write_comfy_shim(tmp_path / "ComfyUI", full_instance_file(tmp_path), {"step_seconds": 0.03})
    managed = ManagedInstance(shim, "gpu0", tmp_path / "state", ready_timeout=60)
    supervisor = Supervisor([managed], interval=0.2)
    supervisor.start()
    finished: list[tuple[float, int]] = []
    outcome: list[RunResult] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "node_finished" and event["node"] == "motion" and event["status"] == "executed":
            finished.append((time.monotonic(), event["element"]))

    try:
        with ComfyPool(supervisor.pool_instances(poll_interval=0.1), health_interval=0.2) as pool:
            worker = threading.Thread(target=lambda: outcome.append(
                run(engine, recipe("wan2.1"), tmp_path, comfy=pool, on_event=on_event)))
            worker.start()
            deadline = time.monotonic() + 60
            while not (finished and admin(managed.url)["current_node"] is not None):
                assert time.monotonic() < deadline and worker.is_alive()
                time.sleep(0.01)
            killed_at, old_pid = time.monotonic(), managed.pid
            os.kill(old_pid, signal.SIGKILL)
            worker.join(90)
            [result] = outcome
            assert result.status == "succeeded", result.failures
            assert executed(result, "motion") == [0, 1, 2]  # each scene once: nothing finished was redone
            assert managed.restarts == 1 and managed.pid != old_pid
            done_before = {SCENES[element] for at, element in finished if at < killed_at}
            redone = {text.split(".")[0] for entry in history(managed.url).values() for text in texts(entry)
                      if text and "camera" in text}
            assert redone and not redone & done_before  # the new process ran only what was unfinished
            rerun = run(engine, recipe("wan2.1"), tmp_path, comfy=pool)
            assert rerun.status == "succeeded" and executed(rerun, "motion") == []
    finally:
        supervisor.stop()


def test_cancelling_a_run_cancels_its_comfy_prompts(engine, comfy, tmp_path):
    requests.post(f"{comfy.url}/admin/faults", json={"hang_on": "KSampler", "hang_interruptible": True}, timeout=10)
    cancel = threading.Event()
    outcome: list[RunResult] = []
    with pool_of(comfy) as pool:
        worker = threading.Thread(target=lambda: outcome.append(run(engine, recipe("wan2.1"), tmp_path, comfy=pool,
                                                                    cancel=cancel)))
        worker.start()
        deadline = time.monotonic() + 30
        while not (admin(comfy.url)["running"] and admin(comfy.url)["pending"] == 1):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        cancel.set()
        worker.join(30)
    [result] = outcome
    assert result.status == "cancelled"
    state = admin(comfy.url)
    assert state["running"] is None and state["pending"] == 0
    entries = history(comfy.url)
    assert 1 <= len(entries) <= 2  # what ran was interrupted; what waited was dequeued or interrupted
    assert all("execution_interrupted" in [m[0] for m in e["status"]["messages"]] for e in entries.values())


def test_two_runs_sharing_a_pool_are_ordered_by_priority(engine, comfy, tmp_path):
    """A run given a higher priority (``reelgraph run --priority``, ``pool.with_priority``) gets the
    instance before the scenes of a run that was waiting first."""
    requests.post(f"{comfy.url}/admin/faults", json={"hang_on": "KSampler", "hang_interruptible": True,
                                                     "hang_times": 1}, timeout=10)
    start = tmp_path / "blocker.png"
    Image.new("RGB", (64, 112), (9, 9, 9)).save(start)
    outcomes: dict[str, Any] = {}

    def in_thread(name: str, work: Any) -> threading.Thread:
        def target() -> None:
            try:
                outcomes[name] = work()
            except Exception as exc:
                outcomes[name] = exc
        thread = threading.Thread(target=target)
        thread.start()
        return thread

    def wait_until(condition: Any) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.02)

    with pool_of(comfy, depth=1) as pool:
        blocker = in_thread("blocker", lambda: pool.run(i2v_job("blocker", "wan2.1", start, prompt="blocker",
                                                                motion="none", seed=0, seconds=0.5, width=64,
                                                                height=112), tmp_path / "blocked"))
        wait_until(lambda: admin(comfy.url)["running"] is not None)
        low = in_thread("low", lambda: run(engine, recipe("wan2.1", ["low one", "low two"]), tmp_path, comfy=pool))
        wait_until(lambda: pool.pending() == 2)
        high = in_thread("high", lambda: run(engine, recipe("wan2.1", ["high"]), tmp_path,
                                             comfy=pool.with_priority(5)))
        wait_until(lambda: pool.pending() == 3)
        requests.post(f"{comfy.url}/interrupt", json={}, timeout=10)
        for thread in (blocker, low, high):
            thread.join(60)
    assert isinstance(outcomes["blocker"], Interrupted)
    assert outcomes["low"].status == outcomes["high"].status == "succeeded"
    order = [text.split(".")[0] for entry in history(comfy.url).values() for text in texts(entry)
             if text and "camera" in text]
    assert order[0] == "blocker" and order[1] == "high" and sorted(order[2:]) == ["low one", "low two"]


def run_keyed(engine, document: dict[str, Any], tmp_path: Path, pool: ComfyPool) -> RunResult:
    """A run on ``pool``: its ComfyUI-placed executions are keyed with the pool's versions."""
    return run(engine, document, tmp_path, comfy=pool)


def interpolated(model: str = "wan2.1") -> dict[str, Any]:
    """Two ComfyUI-placed stages (core-only i2v, RIFE-pack interpolation) beside a local Ken Burns clip."""
    document = recipe(model, SCENES[:1])
    document["nodes"]["smooth"] = {"type": "video.interpolate", "inputs": {"video": {"link": ["motion", "video"]},
                                                                           "fps": 20, "method": "rife"}}
    document["nodes"]["local"] = {"type": "video.i2v", "inputs": {"image": {"link": ["still", "image"]},
                                                                  "seconds": 0.5, "fps": 10, "width": 64, "height": 112}}
    document["outputs"] = {"smooth": {"link": ["smooth", "video"]}, "local": {"link": ["local", "video"]}}
    return document


def test_comfyui_and_pack_versions_key_comfy_placed_executions(engine, tmp_path):
    """A new ComfyUI version reruns what ran on ComfyUI and nothing else; several instances of one
    version key alike whichever runs it; a pool that mixes versions keys apart from both; a
    custom-node pack whose schemas changed reruns only the executions whose workflow uses it."""
    info = full_instance(WITH_MODELS)
    started: list[ComfyTestServer] = []

    def server(name: str, version: str, object_info: Any = info) -> ComfyTestServer:
        started.append(ComfyTestServer(object_info, tmp_path / name, version=version,
                                       faults=Faults(step_seconds=0.001)).start())
        return started[-1]

    def ran(pool: ComfyPool) -> dict[str, list[int | None]]:
        result = run_keyed(engine, interpolated(), tmp_path, pool)
        assert result.status == "succeeded", result.failures
        return {node: executed(result, node) for node in ("still", "motion", "smooth", "local")}

    try:
        old, new, new_too = server("old", "0.26.0"), server("new", "0.27.0"), server("new2", "0.27.0")
        with pool_of(old) as pool:
            assert ran(pool) == {"still": [0], "motion": [0], "smooth": [0], "local": [0]}
            assert ran(pool) == {"still": [], "motion": [], "smooth": [], "local": []}
        with pool_of(new) as pool:
            assert ran(pool) == {"still": [], "motion": [0], "smooth": [0], "local": []}
        with pool_of(new_too, new) as pool:  # same versions: whichever instance would run it, cached
            assert ran(pool) == {"still": [], "motion": [], "smooth": [], "local": []}
            plan = {e.node: e for e in _plan_keyed(engine, interpolated(), tmp_path, pool)}
            assert plan["motion"].status == "cached"
        with pool_of(old, new) as pool:  # mixed: made by either, so reused by neither
            assert ran(pool) == {"still": [], "motion": [0], "smooth": [0], "local": []}
            assert ran(pool) == {"still": [], "motion": [], "smooth": [], "local": []}
        raw = json.loads(json.dumps(info.raw))
        raw["RIFE VFI"]["input"]["required"]["clear_cache_after_n_frames"][1]["default"] = 20  # a pack update
        with pool_of(server("repacked", "0.27.0", ObjectInfo(raw))) as pool:
            plan = {e.node: e for e in _plan_keyed(engine, interpolated(), tmp_path, pool)}
            assert (plan["motion"].status, plan["smooth"].status) == ("cached", "run")
            assert plan["smooth"].reason == "ComfyUI versions changed"
            assert ran(pool) == {"still": [], "motion": [], "smooth": [0], "local": []}
    finally:
        for srv in started:
            srv.stop()


def test_results_made_on_comfyui_are_reused_when_no_instance_answers(engine, tmp_path):
    """The GPU box is gone (or `comfy up` stopped): the instances the home last ran on key the
    results they made, so an edit elsewhere reruns only its own cone, and only work that must
    really run asks for an instance. An instance that answers again keys with its own versions."""
    server = ComfyTestServer(full_instance(WITH_MODELS), tmp_path / "gpu", faults=Faults(step_seconds=0.001)).start()
    url = server.url
    try:
        with pool_of(server) as pool:
            assert run_keyed(engine, interpolated(), tmp_path, pool).status == "succeeded"
    finally:
        server.stop()
    seen = engine.home / "comfy" / "seen-instances.json.gz"
    assert seen.is_file()
    written = seen.stat().st_mtime_ns
    offline = run(engine, interpolated(), tmp_path)  # no pool at all
    assert offline.status == "succeeded", offline.failures
    assert {e.status for e in offline.executions} == {"cached"} and len(offline.executions) == 5
    edited = interpolated()
    edited["nodes"]["local"]["inputs"]["seconds"] = 0.4  # a local node's edit runs without a GPU
    assert executed(run(engine, edited, tmp_path), "local") == [0]
    dead = ComfyPool([ComfyInstance(url, "gone", poll_interval=0.1)], health_interval=0.2)
    try:  # a pool whose instance never answered: the same as none
        plan = {e.node: e.status for e in _plan_keyed(engine, interpolated(), tmp_path, dead)}
        assert plan == dict.fromkeys(["split", "still", "motion", "smooth", "local"], "cached")
    finally:
        dead.close()
    changed = interpolated()
    changed["nodes"]["motion"]["inputs"]["prompt"] = "a new prompt"  # must really run: needs an instance
    result = run(engine, changed, tmp_path)
    assert [e.node for e in result.failures] == ["motion"]
    assert "needs a ComfyUI instance: start one with `reelgraph comfy up`" in result.failures[0].error["cause"]
    assert seen.stat().st_mtime_ns == written  # runs without instances leave the record alone

    newer = ComfyTestServer(full_instance(WITH_MODELS), tmp_path / "new", version="0.27.0",
                            faults=Faults(step_seconds=0.001)).start()
    try:
        with pool_of(newer) as pool:  # live instances count, not the record
            plan = {e.node: e.status for e in _plan_keyed(engine, interpolated(), tmp_path, pool)}
            assert (plan["motion"], plan["smooth"], plan["local"]) == ("run", "waits", "cached")
            assert run_keyed(engine, interpolated(), tmp_path, pool).status == "succeeded"
    finally:
        newer.stop()
    assert seen.stat().st_mtime_ns != written  # and the record follows the instances last used


def _plan_keyed(engine, document: dict[str, Any], tmp_path: Path, pool: ComfyPool) -> list[Any]:
    registry = NodeRegistry([*BUILTIN_TYPES, *PIPELINE_TYPES])
    bound = bind_recipe(parse_recipe(document), registry, base_dir=tmp_path)
    return engine.plan(bound, comfy=pool)


def test_i2v_and_its_interpolation_run_as_one_prompt(engine, comfy, tmp_path):
    """video.i2v (Wan) followed by video.interpolate (RIFE) is one ComfyUI prompt that saves both
    clips; each node keeps its contract and its cache entry, and the interpolate node is recorded
    as executed without a prompt of its own. A rerun is all cached."""
    document = interpolated()
    document["outputs"] |= {"clip": {"link": ["motion", "video"]}, "how": {"link": ["smooth", "placement"]},
                            "made": {"link": ["motion", "placement"]}}
    with pool_of(comfy) as pool:
        result = run(engine, document, tmp_path, comfy=pool)
        assert result.status == "succeeded", result.failures
        assert (executed(result, "motion"), executed(result, "smooth")) == ([0], [0])
        [entry] = history(comfy.url).values()  # one prompt for the pair
        classes = [n["class_type"] for n in entry["prompt"][2].values()]
        assert "WanImageToVideo" in classes and "RIFE VFI" in classes and classes.count("SaveVideo") == 2
        written = export_outputs(result.outputs, tmp_path / "out", engine.store)
        clip, smooth = probe(written["clip"][0]), probe(written["smooth"][0])
        assert (clip["width"], clip["height"], clip["r_frame_rate"], int(clip["nb_read_frames"])) == (64, 112, "10/1", 5)
        assert (smooth["width"], smooth["height"], smooth["r_frame_rate"], int(smooth["nb_read_frames"])) == \
            (64, 112, "20/1", 10)
        how, made = (json.loads(Path(written[name][0]).read_text()) for name in ("how", "made"))
        assert (how["placement"], how["method"], how["multiplier"], how["fused_with"]) == ("comfy", "rife", 2, "motion[0]")
        assert how["prompt_id"] == made["prompt_id"] == next(iter(history(comfy.url)))
        again = run(engine, document, tmp_path, comfy=pool)
        assert again.status == "succeeded" and {e.status for e in again.executions} == {"cached"}
        assert len(history(comfy.url)) == 1


def test_a_workflow_template_edit_reruns_only_what_runs_on_comfyui(engine, comfy, tmp_path, monkeypatch):
    """The fragments' digest keys ComfyUI executions only: a local Ken Burns clip of the same
    node type stays cached when a fragment changes."""
    document = interpolated()
    with pool_of(comfy) as pool:
        assert run(engine, document, tmp_path, comfy=pool).status == "succeeded"
        monkeypatch.setattr(compiler, "templates_fingerprint", lambda: "an edited fragment")
        planned = {(e.node, e.status, e.reason) for e in _plan_keyed(engine, document, tmp_path, pool)}
    assert ("local", "cached", "inputs unchanged") in planned
    assert ("motion", "run", "ComfyUI workflow templates changed") in planned
    assert ("smooth", "waits", "its key depends on the new output of 'motion'") in planned


def test_a_kling_clip_and_its_interpolation_run_as_one_prompt(engine, comfy, tmp_path, monkeypatch):
    """Kling's clip is interpolated in the prompt that asks the API for it: no download and upload."""
    monkeypatch.setenv("COMFY_ORG_API_KEY", "comfyui-test-key")
    document = interpolated("kling")
    document["outputs"] |= {"how": {"link": ["smooth", "placement"]}}
    with pool_of(comfy) as pool:
        result = run(engine, document, tmp_path, comfy=pool)
        assert result.status == "succeeded", result.failures
        assert (executed(result, "motion"), executed(result, "smooth")) == ([0], [0])
        [entry] = history(comfy.url).values()
    classes = [n["class_type"] for n in entry["prompt"][2].values()]
    assert classes.count("KlingImage2VideoNode") == 1 and "RIFE VFI" in classes and classes.count("SaveVideo") == 2
    written = export_outputs(result.outputs, tmp_path / "out", engine.store)
    smooth = probe(written["smooth"][0])
    assert (smooth["width"], smooth["height"], smooth["r_frame_rate"], int(smooth["nb_read_frames"])) == \
        (64, 112, "20/1", 10)
    how = json.loads(Path(written["how"][0]).read_text())
    assert (how["method"], how["multiplier"], how["fused_with"]) == ("rife", 2, "motion[0]")


def test_without_the_interpolation_pack_the_i2v_runs_alone(engine, tmp_path):
    """The fused prompt cannot compile where RIFE VFI is missing: the i2v runs by itself, and the
    interpolate node fails with its own refusal; nothing of the pair is lost."""
    raw = {k: v for k, v in full_instance(WITH_MODELS).raw.items() if k != "RIFE VFI"}
    with ComfyTestServer(ObjectInfo(raw), tmp_path / "norife", faults=Faults(step_seconds=0.001)) as server, \
            pool_of(server) as pool:
        result = run(engine, interpolated(), tmp_path, comfy=pool)
        [entry] = history(server.url).values()
    assert executed(result, "motion") == [0] and "RIFE VFI" not in {n["class_type"] for n in entry["prompt"][2].values()}
    [failure] = result.failures
    assert failure.node == "smooth" and "node class RIFE VFI is not on instance gpu0" in failure.error["cause"]
