"""The client against the ComfyUI-protocol test server, over real HTTP and WebSocket on loopback."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import ffmpeg
import pytest
import requests
import websocket
from PIL import Image
from reelgraph.comfy_workflows.client import ComfyClient, ProgressEvent
from reelgraph.comfy_workflows.compiler import (
    Interpolation,
    StillParams,
    VideoOutput,
    VideoParams,
    compile_still,
    compile_video,
)
from reelgraph.comfy_workflows.errors import (
    ComfyTimeout,
    CompileError,
    ExecutionFailed,
    InstanceLost,
    Interrupted,
    PromptRejected,
)
from reelgraph.comfy_workflows.testserver import ComfyTestServer, Faults
from reelgraph.tests.comfy_server_fixtures import (
    NO_MODELS,
    OLD,
    WITH_MODELS,
    ServerProcess,
    dump,
)


@pytest.fixture
def comfy_server(tmp_path: Path) -> Iterator[ComfyTestServer]:
    """A test server in a thread, serving the 0.26 dump with model files, fast stand-ins."""
    server = ComfyTestServer(dump(WITH_MODELS), tmp_path / "comfy", faults=Faults(step_seconds=0.005))
    server.start()
    yield server
    server.stop()


def start_image(tmp_path: Path) -> Path:
    path = tmp_path / "start.png"
    Image.new("RGB", (64, 112), (200, 60, 20)).save(path)
    return path


def i2v(client: ComfyClient, image: str, **options) -> object:
    request = VideoParams("wan2.2-14b-i2v", "a fox runs", seed=3, steps=4, seconds=1.0, fps=10, width=64, height=112,
                          image=image)
    return compile_video(request, client.object_info(), recipe_node="scene1", instance="gpu-1", **options)


def probe(path: Path) -> dict:
    return next(s for s in ffmpeg.probe(str(path))["streams"] if s["codec_type"] == "video")


@pytest.mark.parametrize("output", ["savevideo", "vhs"])
def test_submit_progress_and_outputs(comfy_server, tmp_path, output):
    client = ComfyClient(comfy_server.url, instance="gpu-1")
    name = client.upload(start_image(tmp_path), subfolder="jobs/run1")
    assert name == "jobs/run1/start.png"
    workflow = i2v(client, name, interpolation=Interpolation(2, method="rife"), output=VideoOutput(node=output))
    events: list[ProgressEvent] = []
    result = client.run(workflow, on_progress=events.append, download_to=tmp_path / "out")
    steps = [(e.comfy_node, e.value, e.max) for e in events if e.kind == "progress"]
    samplers = [i for i, n in workflow.prompt.items() if n["class_type"] == "KSamplerAdvanced"]
    assert steps == [(samplers[0], 1, 2), (samplers[0], 2, 2), (samplers[1], 1, 2), (samplers[1], 2, 2)]
    started = [e.comfy_node for e in events if e.kind == "executing"]
    assert sorted(started, key=int) == sorted(workflow.prompt, key=int)  # every node, once
    assert all(e.recipe_node == "scene1" for e in events if e.kind != "cached")
    [out] = result.outputs
    assert out.key == ("gifs" if output == "vhs" else "images") and out.recipe_node == "scene1"
    [path] = result.files
    stream = probe(path)
    assert int(stream["nb_frames"]) == workflow.frames == 25  # 1 s at 10 fps -> 13 frames, RIFE x2
    assert stream["r_frame_rate"] == "20/1"
    assert path.read_bytes() == (comfy_server.dirs["output"] / out.subfolder / out.filename).read_bytes()


def test_identical_prompt_is_served_from_cache(comfy_server, tmp_path):
    client = ComfyClient(comfy_server.url)
    workflow = compile_still(StillParams("sdxl", "a kite", steps=2, width=64, height=64), client.object_info(),
                             recipe_node="still", instance="gpu-1")
    first = client.run(workflow)
    events: list[ProgressEvent] = []
    second = client.run(workflow, on_progress=events.append)
    assert [o.filename for o in second.outputs] == [o.filename for o in first.outputs]  # no new file
    assert [e.kind for e in events] == ["cached", "executed"]
    assert set(events[0].nodes) == set(workflow.prompt)


def test_message_order_and_routing(comfy_server):
    """Execution events go only to the submitting client's socket, in ComfyUI's order."""
    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    base = comfy_server.url.replace("http", "ws")
    sockets = {sid: websocket.create_connection(f"{base}/ws?clientId={sid}", timeout=10) for sid in (mine, other)}
    for sid, ws in sockets.items():
        hello = json.loads(ws.recv())
        assert hello["type"] == "status" and hello["data"]["sid"] == sid
    workflow = compile_still(StillParams("sdxl", "a kite", steps=2, width=64, height=64), dump(WITH_MODELS),
                             recipe_node="still", instance="t")
    prompt_id = str(uuid.uuid4())
    answer = requests.post(f"{comfy_server.url}/prompt", json={"prompt": workflow.prompt, "client_id": mine,
                                                               "prompt_id": prompt_id}, timeout=10).json()
    assert answer["prompt_id"] == prompt_id and answer["node_errors"] == {}
    seen = []
    while True:
        message = json.loads(sockets[mine].recv())
        seen.append((message["type"], message["data"].get("node")))
        if message["type"] == "executing" and message["data"]["node"] is None:
            break
    kinds = [k for k, _ in seen if k not in ("status", "progress_state")]
    assert kinds[:2] == ["execution_start", "execution_cached"]
    assert kinds[-3:] == ["executed", "execution_success", "executing"]
    assert kinds.count("progress") == 2
    sampler = next(i for i, n in workflow.prompt.items() if n["class_type"] == "KSampler")
    assert kinds.index("progress") == seen_index(seen, "executing", sampler) + 1
    sockets[other].settimeout(0.3)
    others = []
    try:
        while True:
            others.append(json.loads(sockets[other].recv())["type"])
    except websocket.WebSocketTimeoutException:
        pass
    assert set(others) <= {"status"} and others  # queue status is broadcast, nothing else
    for ws in sockets.values():
        ws.close()


def seen_index(seen, kind, node):
    kinds = [(k, n) for k, n in seen if k not in ("status", "progress_state")]
    return kinds.index((kind, node))


def test_validation_errors_are_mapped_to_recipe_nodes(tmp_path):
    """Compiled for an instance that has the models, sent to one that does not (0.26 without models):
    the server's node_errors come back as plain messages naming the recipe node."""
    with ComfyTestServer(dump(NO_MODELS), tmp_path / "srv") as server:
        client = ComfyClient(server.url, instance="gpu-2")
        workflow = compile_video(VideoParams("wan2.1-t2v-1.3b", "x", steps=2, seconds=0.5, fps=10, width=64, height=64),
                                 dump(WITH_MODELS), recipe_node="scene5", instance="gpu-2")
        with pytest.raises(PromptRejected) as caught:
            client.run(workflow)
        message = str(caught.value)
        assert "ComfyUI instance gpu-2 refused the workflow" in message
        assert "recipe node 'scene5' (ComfyUI node 1 UNETLoader): model file wan2.1_t2v_1.3B_fp16.safetensors " \
               "is not on instance gpu-2" in message
        assert {e.class_type for e in caught.value.errors} == {"UNETLoader", "CLIPLoader", "VAELoader"}
        assert client.queue() == {"queue_running": [], "queue_pending": []}


def test_missing_model_is_refused_before_submission(tmp_path):
    with ComfyTestServer(dump(NO_MODELS), tmp_path / "srv") as server:
        client = ComfyClient(server.url, instance="gpu-2")
        assert client.models("diffusion_models") == []
        with pytest.raises(CompileError, match="model file wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors is not "
                                               "on instance gpu-2"):
            compile_video(VideoParams("wan2.2-14b-i2v", "x", image="a.png"), client.object_info(),
                          recipe_node="scene1", instance="gpu-2")
        assert requests.get(f"{server.url}/history", timeout=10).json() == {}


def test_execution_error_is_mapped(comfy_server, tmp_path):
    requests.post(f"{comfy_server.url}/admin/faults",
                  json={"fail_on": {"VAEDecode": "Error while deserializing header: header too small"}}, timeout=10)
    client = ComfyClient(comfy_server.url, instance="gpu-1")
    workflow = i2v(client, client.upload(start_image(tmp_path)))
    with pytest.raises(ExecutionFailed) as caught:
        client.run(workflow)
    decode = next(i for i, n in workflow.prompt.items() if n["class_type"] == "VAEDecode")
    assert str(caught.value) == (f"recipe node 'scene1' (ComfyUI node {decode} VAEDecode): failed with RuntimeError: "
                                 "Error while deserializing header: header too small (instance gpu-1)")
    job = client.job(client_last_job(client))
    assert job["status"] == "failed" and job["execution_error"]["node_id"] == decode


def client_last_job(client: ComfyClient) -> str:
    return requests.get(f"{client.base_url}/api/jobs?limit=1", timeout=10).json()["jobs"][0]["id"]


def test_interrupt(comfy_server, tmp_path):
    requests.post(f"{comfy_server.url}/admin/faults", json={"node_seconds": {"KSamplerAdvanced": 0.2}}, timeout=10)
    client = ComfyClient(comfy_server.url, instance="gpu-1")
    workflow = i2v(client, client.upload(start_image(tmp_path)))

    def on_progress(event: ProgressEvent) -> None:
        if event.kind == "progress":
            threading.Thread(target=client.interrupt).start()

    with pytest.raises(Interrupted, match=r"recipe node 'scene1' \(ComfyUI node \d+ KSamplerAdvanced\): interrupted"):
        client.run(workflow, on_progress=on_progress)
    entry = requests.get(f"{comfy_server.url}/history", timeout=10).json()
    [history] = entry.values()
    assert history["status"]["status_str"] == "error"
    assert "execution_interrupted" in [m[0] for m in history["status"]["messages"]]
    assert client_job_status(client) == "cancelled"


def client_job_status(client: ComfyClient) -> str:
    return requests.get(f"{client.base_url}/api/jobs", timeout=10).json()["jobs"][0]["status"]


def test_dropped_socket_falls_back_to_polling(comfy_server, tmp_path):
    requests.post(f"{comfy_server.url}/admin/faults", json={"node_seconds": {"KSamplerAdvanced": 0.1}}, timeout=10)
    client = ComfyClient(comfy_server.url, instance="gpu-1", poll_interval=0.1)
    workflow = i2v(client, client.upload(start_image(tmp_path)))
    dropped = []

    def on_progress(event: ProgressEvent) -> None:
        if event.kind == "progress" and not dropped:
            dropped.append(requests.post(f"{comfy_server.url}/admin/drop_sockets", timeout=10).json()["dropped"])

    result = client.run(workflow, on_progress=on_progress, download_to=tmp_path / "out")
    assert dropped == [1]
    [path] = result.files
    assert int(probe(path)["nb_frames"]) == workflow.frames


def test_server_killed_mid_prompt_is_instance_lost(tmp_path):
    server = ServerProcess(tmp_path / "srv", faults={"crash_on": "KSamplerAdvanced"})
    try:
        client = ComfyClient(server.url, instance="gpu-9", poll_interval=0.1)
        workflow = i2v(client, client.upload(start_image(tmp_path)))
        with pytest.raises(InstanceLost) as caught:
            client.run(workflow)
        assert "ComfyUI instance gpu-9 was lost" in str(caught.value)
        assert "KSamplerAdvanced" in str(caught.value) and "recipe node 'scene1'" in str(caught.value)
        assert server.process.wait(10) == 17
    finally:
        server.stop()


def test_hung_node_times_out_naming_it(comfy_server, tmp_path):
    requests.post(f"{comfy_server.url}/admin/faults", json={"hang_on": "VAEDecode"}, timeout=10)
    client = ComfyClient(comfy_server.url, instance="gpu-1")
    workflow = i2v(client, client.upload(start_image(tmp_path)))
    with pytest.raises(ComfyTimeout, match=r"did not finish in time while running ComfyUI node \d+ \(VAEDecode\) "
                                           r"of recipe node 'scene1'"):
        client.run(workflow, timeout=1.5)


def test_model_loading_and_free(comfy_server, tmp_path):
    requests.post(f"{comfy_server.url}/admin/faults", json={"model_load_seconds": {"wan2.2_i2v": 0.05}}, timeout=10)
    client = ComfyClient(comfy_server.url)
    workflow = i2v(client, client.upload(start_image(tmp_path)))
    client.run(workflow)
    state = requests.get(f"{comfy_server.url}/admin/state", timeout=10).json()
    assert set(workflow.model_files) - {"rife47.pth"} <= set(state["loaded_models"])
    assert state["load_seconds_total"] == pytest.approx(0.1)
    client.free(unload_models=True)
    assert requests.get(f"{comfy_server.url}/admin/state", timeout=10).json()["loaded_models"] == []


def test_files_routes(comfy_server, tmp_path):
    client = ComfyClient(comfy_server.url)
    first = tmp_path / "clip.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(first)
    assert client.upload(first, subfolder="s", overwrite=False) == "s/clip.png"
    assert client.upload(first, subfolder="s", overwrite=False) == "s/clip.png"  # same bytes: same name
    Image.new("RGB", (8, 8), (9, 9, 9)).save(first)
    assert client.upload(first, subfolder="s", overwrite=False) == "s/clip (1).png"
    audio = tmp_path / "voice.wav"
    audio.write_bytes(b"RIFF....WAVEfmt ")  # any file type is accepted
    assert client.upload(audio) == "voice.wav"
    view = f"{comfy_server.url}/api/view"
    got = requests.get(view, params={"filename": "clip (1).png", "subfolder": "s", "type": "input"}, timeout=10)
    assert got.status_code == 200 and got.headers["Content-Type"] == "image/png" and got.content == first.read_bytes()
    assert requests.get(view, params={"filename": "clip.png [input]", "subfolder": "s"}, timeout=10).status_code == 200
    assert requests.get(view, params={"filename": "../x.png"}, timeout=10).status_code == 400
    assert requests.get(view, params={"filename": "x.png", "subfolder": "../../"}, timeout=10).status_code == 403
    assert requests.get(view, params={"filename": "nope.png"}, timeout=10).status_code == 404


def test_prompt_id_rules_and_other_routes(tmp_path):
    prompt = compile_still(StillParams("sdxl", "x", steps=1, width=64, height=64), dump(WITH_MODELS),
                           recipe_node="s", instance="t").prompt
    with ComfyTestServer(dump(WITH_MODELS), tmp_path / "new") as new, \
            ComfyTestServer(dump(OLD), tmp_path / "old", version="0.3.64") as old:
        bad = requests.post(f"{new.url}/api/prompt", json={"prompt": prompt, "prompt_id": "my-id"}, timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_prompt_id"
        assert requests.post(f"{new.url}/prompt", json={}, timeout=10).json()["error"]["type"] == "no_prompt"
        upper = str(uuid.uuid4()).upper()
        assert requests.post(f"{new.url}/prompt", json={"prompt": prompt, "prompt_id": upper}, timeout=10).status_code == 400
        ok = requests.post(f"{new.url}/prompt", json={"prompt": prompt}, timeout=10).json()
        uuid.UUID(ok["prompt_id"])
        # 0.3.64: any string is a prompt_id; an unknown class is "invalid_prompt"; no /api/jobs yet.
        answer = requests.post(f"{old.url}/prompt", json={"prompt": {"9": {"class_type": "Nope", "inputs": {}}}}, timeout=10)
        assert answer.json()["error"]["type"] == "invalid_prompt"
        no_models = {  # runs on a server without model files
            "1": {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}},
            "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 0]}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "old"}},
        }
        answer = requests.post(f"{old.url}/prompt", json={"prompt": no_models, "prompt_id": "my-id"}, timeout=10)
        assert answer.status_code == 200 and answer.json()["prompt_id"] == "my-id"
        assert requests.get(f"{old.url}/api/jobs", timeout=10).status_code == 404
        stats = ComfyClient(old.url).system_stats()
        assert stats["system"]["comfyui_version"] == "0.3.64"
        client = ComfyClient(new.url)
        assert "diffusion_models" in client.models()
        assert "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors" in client.models("diffusion_models")
        assert requests.get(f"{new.url}/api/models/nope", timeout=10).status_code == 404
        assert requests.get(f"{new.url}/api/object_info/KSampler", timeout=10).json()["KSampler"]["name"] == "KSampler"
        jobs = requests.get(f"{new.url}/api/jobs", timeout=10).json()
        assert jobs["pagination"]["total"] == 1 and jobs["jobs"][0]["id"] == ok["prompt_id"]
        assert requests.get(f"{new.url}/api/jobs/{uuid.uuid4()}", timeout=10).status_code == 404


def test_without_client_id_only_progress_and_status_are_broadcast(comfy_server):
    listener = websocket.create_connection(f"{comfy_server.url.replace('http', 'ws')}/ws", timeout=10)
    assert json.loads(listener.recv())["data"]["sid"]  # the server names a client that gave no id
    workflow = compile_still(StillParams("sdxl", "a kite", seed=11, steps=3, width=64, height=64), dump(WITH_MODELS),
                             recipe_node="still", instance="t")
    prompt_id = requests.post(f"{comfy_server.url}/prompt", json={"prompt": workflow.prompt}, timeout=10).json()["prompt_id"]
    kinds = []
    listener.settimeout(5)
    while kinds.count("progress") < 3:
        kinds.append(json.loads(listener.recv())["type"])
    assert set(kinds) <= {"status", "progress", "progress_state"}
    listener.close()
    deadline = time.monotonic() + 10
    while prompt_id not in (history := requests.get(f"{comfy_server.url}/history?max_items=1", timeout=10).json()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [entry] = history.values()
    assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]
    [save] = [n for n, node in workflow.prompt.items() if node["class_type"] == "SaveImage"]
    assert entry["outputs"][save]["images"][0]["filename"] == "still_00001_.png"
    assert entry["prompt"][1] == prompt_id and entry["prompt"][4] == [save]
