"""The ComfyUI pool against test servers over real HTTP and WebSocket: placement by model,
priority, refusal before submission, node_errors, timeouts, lost prompts and cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import ffmpeg
import pytest
import requests
from PIL import Image
from reelgraph.comfy_workflows.errors import (
    ComfyTimeout,
    CompileError,
    Interrupted,
    PromptRejected,
)
from reelgraph.comfy_workflows.instances import ManagedInstance
from reelgraph.comfy_workflows.placement import i2v_job
from reelgraph.comfy_workflows.pool import ComfyInstance, ComfyJob, ComfyPool
from reelgraph.comfy_workflows.testserver import ComfyTestServer, Faults
from reelgraph.tests.comfy_server_fixtures import (
    NO_MODELS,
    SHARED_COMFY,
    WITH_MODELS,
    dump,
    full_instance,
    full_instance_file,
    write_comfy_shim,
)

WAN = {"wan2.1_i2v_480p_14B_fp16.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan_2.1_vae.safetensors",
       "clip_vision_h.safetensors"}
HUNYUAN = {"hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors", "clip_l.safetensors",
           "llava_llama3_fp8_scaled.safetensors", "hunyuan_video_vae_bf16.safetensors", "llava_llama3_vision.safetensors"}


def server(tmp_path: Path, name: str, **faults) -> ComfyTestServer:
    return ComfyTestServer(full_instance(WITH_MODELS), tmp_path / name, faults=Faults(step_seconds=0.005, **faults)).start()


@pytest.fixture
def one(tmp_path: Path) -> Iterator[ComfyTestServer]:
    srv = server(tmp_path, "one")
    yield srv
    srv.stop()


def start_image(tmp_path: Path, colour: tuple[int, int, int] = (200, 60, 20)) -> Path:
    """Written once and atomically: jobs are made in several threads, and a file rewritten while
    another job uploads it is not the file that job hashed (engine inputs never change)."""
    path = tmp_path / f"start-{colour[0]}-{colour[1]}-{colour[2]}.png"
    if not path.exists():
        staging = path.with_name(f"{path.stem}.{threading.get_ident()}.png")
        Image.new("RGB", (64, 112), colour).save(staging)
        staging.replace(path)
    return path


def job(tmp_path: Path, model: str = "wan2.1", name: str = "motion[0]", colour=(200, 60, 20), seed: int = 1) -> ComfyJob:
    return i2v_job(name, model, start_image(tmp_path, colour), prompt="a fox", motion="zoom_in", seed=seed,
                   seconds=0.5, width=64, height=112)


def pool_of(*servers: ComfyTestServer, **options) -> ComfyPool:
    instances = [ComfyInstance(s.url, f"gpu{i}", poll_interval=0.1) for i, s in enumerate(servers)]
    return ComfyPool(instances, health_interval=0.2, **options)


def admin(srv: ComfyTestServer) -> dict:
    return requests.get(f"{srv.url}/admin/state", timeout=10).json()


def history(srv: ComfyTestServer) -> dict:
    return requests.get(f"{srv.url}/history", timeout=10).json()


def models_of(entry: dict) -> set[str]:
    return {v for node in entry["prompt"][2].values() for v in node["inputs"].values()
            if isinstance(v, str) and v.endswith(".safetensors")}


def in_threads(pool: ComfyPool, jobs: list[ComfyJob], dest: Path) -> list:
    results: list = [None] * len(jobs)

    def one_job(index: int) -> None:
        try:
            results[index] = pool.run(jobs[index], dest / str(index))
        except Exception as exc:  # noqa: BLE001 - asserted by the caller
            results[index] = exc

    threads = [threading.Thread(target=one_job, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_a_job_runs_uploads_once_by_content_and_downloads(one, tmp_path):
    with pool_of(one) as pool:
        result = pool.run(job(tmp_path), tmp_path / "out")
        again = pool.run(job(tmp_path), tmp_path / "again")  # same start image: same upload name
    [clip] = result.files
    stream = next(s for s in ffmpeg.probe(str(clip))["streams"] if s["codec_type"] == "video")
    assert int(stream["nb_frames"]) == result.workflow.frames == 9  # 0.5 s at Wan's 16 fps: 4k+1 covering 8
    assert result.instance == "gpu0" and result.provenance()["comfy_model_files"] == sorted(WAN)
    uploads = [p for p in one.dirs["input"].rglob("*") if p.is_file()]
    assert len(uploads) == 1 and uploads[0].parent.parent.name == "in"  # reelgraph/in/<sha256>/image.png
    load = next(n for n in again.workflow.prompt.values() if n["class_type"] == "LoadImage")
    assert load["inputs"]["image"] == uploads[0].relative_to(one.dirs["input"]).as_posix()
    assert result.files[0].parent != again.files[0].parent and len(history(one)) == 2


def test_missing_model_is_refused_before_anything_is_sent(tmp_path):
    with ComfyTestServer(dump(NO_MODELS), tmp_path / "bare") as bare, pool_of(bare) as pool:
        with pytest.raises(CompileError, match=r"recipe node 'motion\[0\]' \(ComfyUI node \d+ UNETLoader\): model file "
                                               r"wan2.1_i2v_480p_14B_fp16.safetensors is not on instance gpu0"):
            pool.run(job(tmp_path), tmp_path / "out")
        assert history(bare) == {}
        assert not [p for p in bare.dirs["input"].rglob("*") if p.is_file()]  # not even uploaded


def test_refused_on_every_instance_names_each(tmp_path):
    with ComfyTestServer(dump(NO_MODELS), tmp_path / "a") as a, ComfyTestServer(dump(NO_MODELS), tmp_path / "b") as b, \
            pool_of(a, b) as pool, pytest.raises(CompileError) as caught:
        pool.run(job(tmp_path), tmp_path / "out")
    assert "no ComfyUI instance can run recipe node 'motion[0]'" in str(caught.value)
    assert "gpu0: " in str(caught.value) and "gpu1: " in str(caught.value)


def test_node_errors_come_back_as_a_recipe_level_message(one, tmp_path):
    """The instance lost its model files after the pool read its schemas: ComfyUI's node_errors
    (value_not_in_list) are mapped to the recipe node and the file, and nothing stays queued."""
    with pool_of(one) as pool:
        requests.post(f"{one.url}/admin/object_info", json={"path": str(SHARED_COMFY / NO_MODELS)}, timeout=10)
        with pytest.raises(PromptRejected) as caught:
            pool.run(job(tmp_path), tmp_path / "out")
    message = str(caught.value)
    assert message.startswith("ComfyUI instance gpu0 refused the workflow: recipe node 'motion[0]' (ComfyUI node ")
    assert "model file wan2.1_i2v_480p_14B_fp16.safetensors is not on instance gpu0" in message
    assert requests.get(f"{one.url}/queue", timeout=10).json() == {"queue_running": [], "queue_pending": []}


def test_hang_times_out_is_interrupted_and_retried(tmp_path):
    srv = server(tmp_path, "slow", hang_on="KSampler", hang_interruptible=True, hang_times=1)
    try:
        with pool_of(srv, prompt_timeout=1.0, interrupt_grace=5.0) as pool:
            result = pool.run(job(tmp_path), tmp_path / "out")
            assert pool.stats()["gpu0"]["timeouts"] == 1
        first, second = history(srv).values()
        assert "execution_interrupted" in [m[0] for m in first["status"]["messages"]]
        assert second["status"]["status_str"] == "success" and result.prompt_id in history(srv)
        assert result.attempts == 2
    finally:
        srv.stop()


def test_a_second_timeout_fails_the_job(tmp_path):
    srv = server(tmp_path, "stuck", hang_on="KSampler", hang_interruptible=True)
    try:
        with pool_of(srv, prompt_timeout=0.6, interrupt_grace=5.0) as pool, \
                pytest.raises(ComfyTimeout, match=r"while running ComfyUI node \d+ \(KSampler\) of recipe node "
                                                  r"'motion\[0\]' \(twice; gave up\)"):
            pool.run(job(tmp_path), tmp_path / "out")
        assert admin(srv)["running"] is None  # both were interrupted
    finally:
        srv.stop()


def test_work_is_routed_to_the_instance_that_has_the_model(tmp_path):
    """Two instances end up with different models loaded; later jobs follow the models, so each
    server loads each of its files once and never sees the other family."""
    a = server(tmp_path, "a", node_seconds={"KSampler": 0.01, "SamplerCustomAdvanced": 0.01})
    b = server(tmp_path, "b", node_seconds={"KSampler": 0.01, "SamplerCustomAdvanced": 0.01})
    try:
        with pool_of(a, b) as pool:
            first = in_threads(pool, [job(tmp_path, "wan2.1"), job(tmp_path, "hunyuan")], tmp_path / "first")
            assert {r.instance for r in first} == {"gpu0", "gpu1"}
            wan_home = first[0].instance
            mixed = [job(tmp_path, model, f"s{i}", colour=(i * 20, 5, 5), seed=i)
                     for i, model in enumerate(["hunyuan", "wan2.1"] * 3)]
            results = in_threads(pool, mixed, tmp_path / "mixed")
            assert all(not isinstance(r, Exception) for r in results), results
            assert {r.instance for r, j in zip(results, mixed) if j.family == "wan2.1-i2v-480p"} == {wan_home}
            assert pool.stats()["gpu0"]["switches"] == pool.stats()["gpu1"]["switches"] == 0
        wan_server, hunyuan_server = (a, b) if wan_home == "gpu0" else (b, a)
        assert all(models_of(e) == WAN for e in history(wan_server).values())
        assert all(models_of(e) == HUNYUAN for e in history(hunyuan_server).values())
        assert len(history(wan_server)) == len(history(hunyuan_server)) == 4
        assert admin(wan_server)["loads"] == dict.fromkeys(WAN, 1)
        assert admin(hunyuan_server)["loads"] == dict.fromkeys(HUNYUAN, 1)
    finally:
        a.stop()
        b.stop()


def test_switching_heavy_models_frees_memory_first(one, tmp_path):
    with pool_of(one) as pool:
        pool.run(job(tmp_path, "wan2.1"), tmp_path / "a")
        requests.post(f"{one.url}/admin/faults", json={"max_loaded_models": 0}, timeout=10)
        pool.run(job(tmp_path, "hunyuan"), tmp_path / "b")
        assert pool.stats()["gpu0"]["frees"] == 1
    assert set(admin(one)["loaded_models"]) == HUNYUAN  # the /free unloaded the Wan files first


def test_higher_priority_goes_first(one, tmp_path):
    requests.post(f"{one.url}/admin/faults", json={"node_seconds": {"KSampler": 0.02}}, timeout=10)
    with pool_of(one, depth=1) as pool:
        urgent = pool.with_priority(5)
        order: list[str] = []
        blocker = threading.Thread(target=lambda: pool.run(job(tmp_path, name="blocker"), tmp_path / "b"))
        blocker.start()
        while admin(one)["running"] is None:
            time.sleep(0.01)
        threads = []
        for seed, (name, handle) in enumerate((("low1", pool), ("low2", pool), ("high", urgent)), start=11):
            thread = threading.Thread(target=lambda n=name, h=handle, s=seed: h.run(job(tmp_path, name=n, seed=s),
                                                                                      tmp_path / n))
            thread.start()
            threads.append(thread)
            while pool.pending() < len(threads):
                time.sleep(0.005)
        for thread in [blocker, *threads]:
            thread.join(30)
        for entry in history(one).values():
            title = next(iter(entry["prompt"][2].values()))["_meta"]["title"]
            order.append(title.split(":")[0])
    assert order == ["blocker", "high", "low1", "low2"]


def test_priority_also_orders_comfyuis_own_queue(one, tmp_path):
    """Two pools on one instance (two `reelgraph run` processes): each keeps its own queue, so the
    priority must reach ComfyUI's queue as the prompt's ``number`` for the urgent prompt to run first."""
    requests.post(f"{one.url}/admin/faults", json={"hang_on": "KSampler", "hang_interruptible": True,
                                                   "hang_times": 1}, timeout=10)
    with pool_of(one) as first, pool_of(one) as second:
        blocker = threading.Thread(target=lambda: pytest.raises(Interrupted, first.run, job(tmp_path, name="blocker"),
                                                                tmp_path / "b"))
        blocker.start()
        wait_for(lambda: admin(one)["running"] is not None)
        low = threading.Thread(target=lambda: first.run(job(tmp_path, name="low", seed=2), tmp_path / "low"))
        low.start()
        wait_for(lambda: queue_names(one)[1] == ["low"])
        high = threading.Thread(target=lambda: second.with_priority(3).run(job(tmp_path, name="high", seed=3),
                                                                            tmp_path / "high"))
        high.start()
        wait_for(lambda: queue_names(one)[1] == ["high", "low"])  # ComfyUI put it in front
        requests.post(f"{one.url}/interrupt", json={}, timeout=10)
        for thread in (blocker, low, high):
            thread.join(30)
    order = [next(iter(e["prompt"][2].values()))["_meta"]["title"].split(":")[0] for e in history(one).values()]
    assert order == ["blocker", "high", "low"]


def queue_names(srv: ComfyTestServer) -> tuple[list[str], list[str]]:
    """Recipe node names of the running and the pending prompts, from ComfyUI's own /queue."""
    queue = requests.get(f"{srv.url}/queue", timeout=10).json()

    def name(item: list) -> str:
        return next(iter(item[2].values()))["_meta"]["title"].split(":")[0]

    return [name(i) for i in queue["queue_running"]], [name(i) for i in queue["queue_pending"]]


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_cancel_dequeues_waiting_prompts_and_interrupts_the_running_one(one, tmp_path):
    """Four jobs, two slots: one runs, one waits in ComfyUI's queue, two wait in the pool. Each is
    cancelled in turn, and ComfyUI lets go of each the way its state says it should."""
    requests.post(f"{one.url}/admin/faults", json={"hang_on": "KSampler", "hang_interruptible": True}, timeout=10)
    names = [f"s{i}" for i in range(4)]
    cancels = {name: threading.Event() for name in names}
    errors: dict[str, BaseException] = {}
    with pool_of(one) as pool:
        def run(index: int) -> None:
            name = names[index]
            try:
                pool.run(job(tmp_path, name=name, seed=index), tmp_path / name, cancel=cancels[name])
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors[name] = exc

        threads = {name: threading.Thread(target=run, args=(i,)) for i, name in enumerate(names)}
        for thread in threads.values():
            thread.start()
        wait_for(lambda: queue_names(one)[0] and queue_names(one)[1] and pool.pending() == 2)
        [running], [queued] = queue_names(one)
        held = [n for n in names if n not in (running, queued)]

        cancels[held[0]].set()  # never sent: ComfyUI sees nothing
        threads[held[0]].join(10)
        assert "cancelled before it reached ComfyUI" in str(errors[held[0]])
        assert queue_names(one) == ([running], [queued])

        cancels[queued].set()  # taken off ComfyUI's queue; the last held job moves into its place
        threads[queued].join(10)
        assert "was cancelled" in str(errors[queued]) and isinstance(errors[queued], Interrupted)
        wait_for(lambda: queue_names(one) == ([running], [held[1]]))

        cancels[held[1]].set()
        threads[held[1]].join(10)
        cancels[running].set()  # interrupted where it runs
        threads[running].join(10)
    assert set(errors) == set(names) and all(isinstance(e, Interrupted) for e in errors.values())
    assert str(errors[running]).startswith(f"recipe node '{running}' (ComfyUI node ")
    assert "): interrupted" in str(errors[running])
    state = admin(one)
    assert state["running"] is None and state["pending"] == 0
    [entry] = history(one).values()  # only the running one ever ran
    assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]


def test_a_lost_prompt_is_resubmitted_when_a_remote_instance_comes_back(tmp_path):
    """kill -9 a server process mid-prompt; someone else starts it again on the same port (a
    remote instance: the pool only waits for its health check), and the job completes there."""
    shim = write_comfy_shim(tmp_path / "comfy", full_instance_file(tmp_path), {"step_seconds": 0.05})
    process = ManagedInstance(shim, "remote", tmp_path / "state", ready_timeout=60)
    process.start()
    try:
        with ComfyPool([ComfyInstance(process.url, "remote", poll_interval=0.1)], health_interval=0.2) as pool:
            done: list = []
            worker = threading.Thread(target=lambda: done.append(pool.run(job(tmp_path), tmp_path / "out")))
            worker.start()
            deadline = time.monotonic() + 20
            while requests.get(f"{process.url}/admin/state", timeout=5).json()["current_node"] is None:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            old_pid = process.pid
            process.process.kill()  # kill -9
            process.process.wait(10)
            time.sleep(0.5)
            process.start()
            worker.join(60)
            [result] = done
            assert result.attempts == 2 and process.pid != old_pid
            assert list(history_of(process.url)) == [result.prompt_id]  # the new process ran it
            assert pool.stats()["remote"]["lost"] >= 1
    finally:
        process.stop()


def history_of(url: str) -> dict:
    return requests.get(f"{url}/history", timeout=10).json()


def test_pool_reports_instances_that_never_answer(tmp_path):
    from reelgraph.comfy_workflows.errors import ComfyError

    with pytest.raises(ComfyError, match=r"no ComfyUI instance answers: http://127.0.0.1:9/?: .*not answering"):
        ComfyPool.connect(["http://127.0.0.1:9"], ready_timeout=0.3)
