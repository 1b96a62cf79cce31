"""Managed ComfyUI instances, `reelgraph comfy up | doctor | provision`, for real: the "ComfyUI
checkout" is a folder whose main.py starts the protocol test server with ComfyUI's flags."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import ffmpeg
import pytest
import requests
from PIL import Image
from reelgraph.comfy_workflows.compiler import STILL_MODELS, VIDEO_MODELS, Interpolation
from reelgraph.comfy_workflows.errors import InstanceLost
from reelgraph.comfy_workflows.instances import (
    InstanceStartError,
    ManagedInstance,
    Supervisor,
)
from reelgraph.comfy_workflows.placement import i2v_job
from reelgraph.comfy_workflows.pool import ComfyPool
from reelgraph.comfy_workflows.provision import (
    ProvisionError,
    Published,
    install_model,
    download,
    load_manifest,
    published_checksum,
)
from reelgraph.comfy_workflows.testserver import ComfyTestServer
from reelgraph.tests.comfy_server_fixtures import (
    NO_MODELS,
    dump,
    full_instance,
    full_instance_file,
    write_comfy_shim,
)
from reelgraph.tests.helpers import cli_env

REPO = Path(__file__).resolve().parent.parent


def wait_for(condition, seconds: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/system_stats", timeout=5).ok
    except requests.ConnectionError:
        return False


def admin(url: str) -> dict:
    return requests.get(f"{url}/admin/state", timeout=10).json()


def scenes_recipe(path: Path, model: str = "wan2.1") -> Path:
    document = {
        "reelgraph": 1,
        "name": "comfy-scenes",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": "a red fox|a blue lake|a green hill", "separator": "|"}},
            "still": {"type": "image.generate", "inputs": {"prompt": {"link": ["split", "items"]}, "width": 64,
                                                           "height": 112}},
            "motion": {"type": "video.i2v", "inputs": {"image": {"link": ["still", "image"]},
                                                       "prompt": {"link": ["split", "items"]}, "seconds": 0.5,
                                                       "fps": 10, "width": 64, "height": 112, "model": model}},
        },
        "outputs": {"clips": {"link": ["motion", "video"]}},
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_up_starts_one_instance_per_gpu_supervises_and_run_uses_them(tmp_path, plugin_path):
    """`reelgraph comfy up --gpus 0,1` starts two pinned, warmed-up instances and lists them;
    `reelgraph run` finds them without --comfy; a kill -9 is followed by a restart; SIGTERM stops all."""
    shim = write_comfy_shim(tmp_path / "ComfyUI", full_instance_file(tmp_path), {"step_seconds": 0.005})
    home = tmp_path / "home"
    env = cli_env(plugin_path, tmp_path / "log")
    up = subprocess.Popen([sys.executable, "-m", "reelgraph.cli", "--home", str(home), "comfy", "up", "--path",
                           str(shim), "--gpus", "0,1", "--ready-timeout", "60"],
                          env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = home / "comfy" / "instances.json"
    try:
        wait_for(state.exists, 60, "instances.json")
        listed = json.loads(state.read_text())["instances"]
        assert [(i["name"], i["gpu"]) for i in listed] == [("gpu0", "0"), ("gpu1", "1")]
        for instance in listed:
            log = (home / "comfy" / instance["name"] / "comfyui.log").read_text()
            assert f"CUDA_VISIBLE_DEVICES={instance['gpu']}" in log
            assert "--disable-auto-launch" in log and "--listen 127.0.0.1" in log
            [warm] = requests.get(f"{instance['url']}/history", timeout=10).json().values()
            assert [n["class_type"] for n in warm["prompt"][2].values()] == ["EmptyImage", "PreviewImage"]
            assert admin(instance["url"])["pid"] == instance["pid"]

        recipe = scenes_recipe(tmp_path / "recipe.json")
        run = subprocess.run([sys.executable, "-m", "reelgraph.cli", "--home", str(home), "run", str(recipe),
                              "--out", str(tmp_path / "out"), "--quiet"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 0, run.stderr
        clips = sorted((tmp_path / "out" / "clips").iterdir())
        assert len(clips) == 3
        for clip in clips:
            stream = ffmpeg.probe(str(clip), count_frames=None)["streams"][0]
            assert (stream["width"], stream["height"], int(stream["nb_read_frames"])) == (64, 112, 5)
        ran = [len(requests.get(f"{i['url']}/history", timeout=10).json()) - 1 for i in listed]
        assert sum(ran) == 3  # the scenes, spread over the instances (besides each warm-up)

        victim = listed[1]
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: json.loads(state.read_text())["instances"][1]["restarts"] == 1, 60, "a restart")
        wait_for(lambda: answers(victim["url"]), 30, "the restarted instance")
        assert admin(victim["url"])["pid"] != victim["pid"]
    finally:
        up.send_signal(signal.SIGTERM)
        stdout, stderr = up.communicate(timeout=30)
    assert up.returncode == 0, stderr
    assert "gpu1: exited (code -9); restarted" in stderr
    assert stdout.startswith("gpu0: http://127.0.0.1:") and "ready (pid" in stdout and "warm-up" in stdout
    assert not state.exists()
    for instance in listed:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{instance['url']}/system_stats", timeout=2)


def test_a_prompt_that_will_not_stop_restarts_the_instance_and_is_retried(tmp_path):
    shim = write_comfy_shim(tmp_path / "ComfyUI", full_instance_file(tmp_path), {"step_seconds": 0.005})
    managed = ManagedInstance(shim, "gpu0", tmp_path / "state", ready_timeout=60)
    supervisor = Supervisor([managed], interval=0.2)
    supervisor.start()
    try:
        # a stuck kernel: the node ignores /interrupt (set at run time, so the restarted process is healthy)
        requests.post(f"{managed.url}/admin/faults", json={"hang_on": "VAEDecode"}, timeout=10)
        image = tmp_path / "start.png"
        Image.new("RGB", (64, 112), (9, 99, 199)).save(image)
        job = i2v_job("motion[0]", "wan2.1", image, prompt="x", motion="none", seed=3, seconds=0.5, width=64, height=112)
        with ComfyPool(supervisor.pool_instances(poll_interval=0.1), prompt_timeout=1.0, interrupt_grace=0.5,
                       health_interval=0.2) as pool:
            result = pool.run(job, tmp_path / "out")
            assert pool.stats()["gpu0"]["timeouts"] == 1
        assert managed.restarts == 1 and result.attempts == 2
        assert result.prompt_id in requests.get(f"{managed.url}/history", timeout=10).json()
    finally:
        supervisor.stop()
    assert not managed.alive()


def test_a_checkout_that_does_not_start_is_reported_with_its_log(tmp_path):
    shim = write_comfy_shim(tmp_path / "ComfyUI", Path("unused"), exit_with="ImportError: No module named 'torch'")
    managed = ManagedInstance(shim, "gpu0", tmp_path / "state", ready_timeout=30)
    with pytest.raises(InstanceStartError, match=r"ComfyUI gpu0 exited with code 3 before it was ready; last log "
                                                 r"lines: .*ImportError: No module named 'torch'"):
        managed.start()
    with pytest.raises(InstanceStartError, match="has no main.py"):
        ManagedInstance(tmp_path, "x", tmp_path / "state").start()


def test_pool_gives_up_after_repeated_losses(tmp_path):
    """An instance that crashes on every prompt: the job fails after `attempts` lost prompts."""
    shim = write_comfy_shim(tmp_path / "ComfyUI", full_instance_file(tmp_path), {"crash_on": "KSampler"})
    managed = ManagedInstance(shim, "gpu0", tmp_path / "state", ready_timeout=60)
    supervisor = Supervisor([managed], interval=0.2, warmup=False)
    supervisor.start()
    try:
        image = tmp_path / "start.png"
        Image.new("RGB", (64, 112), (1, 2, 3)).save(image)
        job = i2v_job("motion[2]", "wan2.1", image, prompt="x", motion="none", seed=3, seconds=0.5, width=64, height=112)
        with ComfyPool(supervisor.pool_instances(poll_interval=0.1), attempts=2, health_interval=0.2) as pool, \
                pytest.raises(InstanceLost, match=r"recipe node 'motion\[2\]'.*gave up after 2 lost prompts"):
            pool.run(job, tmp_path / "out")
        assert managed.restarts >= 1
    finally:
        supervisor.stop()


# ---------------------------------------------------------------------------------------------
# doctor


def test_doctor_reports_what_each_node_lacks(tmp_path, cli, monkeypatch):
    recipe = {
        "reelgraph": 1,
        "nodes": {
            "still": {"type": "image.generate", "inputs": {"prompt": "a fox", "model": "sdxl"}},
            "motion": {"type": "video.i2v", "inputs": {"image": {"link": ["still", "image"]}, "seconds": 2.0,
                                                       "model": "wan2.2"}},
            "smooth": {"type": "video.interpolate", "inputs": {"video": {"link": ["motion", "video"]}, "fps": 30,
                                                               "method": "rife"}},
            "kling": {"type": "video.i2v", "inputs": {"image": {"link": ["still", "image"]}, "seconds": 2.0,
                                                      "model": "kling"}},
            "local": {"type": "video.i2v", "inputs": {"image": {"link": ["still", "image"]}, "seconds": 2.0}},
        },
    }
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    with ComfyTestServer(dump(NO_MODELS), tmp_path / "bare") as bare, \
            ComfyTestServer(full_instance("object_info-0.26.0-with-models.json"), tmp_path / "full") as full:
        lacking = cli("comfy", "doctor", str(path), "--comfy", bare.url, check_code=1)
        out = lacking.stdout
        assert "still (image.generate, sdxl): lacks model file sd_xl_base_1.0.safetensors (models/checkpoints)\n" \
               "    get it with `reelgraph comfy provision --path COMFYUI_DIR --model sdxl`" in out
        assert "motion (video.i2v, wan2.2-14b-i2v): lacks model file umt5_xxl_fp8_e4m3fn_scaled.safetensors " \
               "(models/text_encoders); model file wan_2.1_vae.safetensors (models/vae); model file " \
               "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors (models/diffusion_models); model file " \
               "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors (models/diffusion_models)\n" \
               "    get them with `reelgraph comfy provision --path COMFYUI_DIR --model wan2.2-14b-i2v`" in out
        assert "smooth (video.interpolate, rife:rife47.pth): ok" in out  # RIFE's checkpoints are a static list
        assert "kling (video.i2v): lacks video.i2v model 'kling' (a Comfy.org API node): set the environment " \
               "variable COMFY_ORG_API_KEY" in out
        assert "local (" not in out
        monkeypatch.setenv("COMFY_ORG_API_KEY", "test-key")
        report = json.loads(cli("comfy", "doctor", str(path), "--comfy", full.url, "--json", check_code=0).stdout)
    rows = {row["node"]: row["lacks"] for row in report["instances"][0]["nodes"]}
    assert rows == {"still": [], "motion": [], "smooth": [], "kling": []} and report["ok"] is True
    assert report["instances"][0]["comfyui_version"] == "0.26.0"


# ---------------------------------------------------------------------------------------------
# provisioning


def test_manifest_names_every_model_file_the_compiler_uses():
    manifest = load_manifest()
    files = {m.file for m in manifest.models}
    used = {f for m in [*VIDEO_MODELS.values(), *STILL_MODELS.values()] for f in m.files.values()}
    used |= {Interpolation().core_model, Interpolation().rife_checkpoint}
    assert used <= files, sorted(used - files)
    for model in manifest.models:
        assert model.url.startswith("https://") and model.url.endswith("/" + model.file)
        assert (model.size > 0) == (len(model.sha256) == 64), f"{model.file}: size and sha256 come together"
        assert all(c in "0123456789abcdef" for c in model.sha256)
        groups = set(model.groups)
        assert groups and groups <= {*VIDEO_MODELS, *STILL_MODELS, "core", "rife"}
        for name in groups & set(VIDEO_MODELS):
            assert model.file in VIDEO_MODELS[name].files.values()
    pins = {p.name: p.commit for p in manifest.custom_nodes}
    assert pins == {"ComfyUI-VideoHelperSuite": "4ee72c06", "ComfyUI-Frame-Interpolation": "26545cc2"}
    assert manifest.comfyui.ref == "v0.26.0"


def test_provision_dry_run_prints_the_plan(cli, tmp_path):
    target = tmp_path / "ComfyUI"
    out = cli("comfy", "provision", "--path", str(target), "--model", "wan2.2-5b", "--dry-run", check_code=0).stdout
    lines = out.splitlines()
    assert lines[0].startswith("clone    ComfyUI: https://github.com/comfyanonymous/ComfyUI.git into ")
    assert "check out f6c162dd (v0.26.0)" in lines[0]
    assert any(line.startswith("pip      ComfyUI-Frame-Interpolation:") and "requirements-no-cupy.txt" in line
               for line in lines)
    downloads = [line for line in lines if line.startswith("download ")]
    assert [d.split(":")[0].split()[1] for d in downloads] == [
        "models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        "models/diffusion_models/wan2.2_ti2v_5B_fp16.safetensors", "models/vae/wan2.2_vae.safetensors"]
    assert "(9,999,658,848 bytes)" in downloads[1] and not any(line.startswith("warn ") for line in lines)
    hunyuan = cli("comfy", "provision", "--path", str(target), "--model", "hunyuan", "--dry-run",
                  check_code=0).stdout.splitlines()
    assert any(line.startswith("download models/text_encoders/llava_llama3_fp8_scaled.safetensors: ")
               and "(9,091,392,483 bytes)" in line for line in hunyuan)
    assert any(line.startswith("download models/vae/hunyuan_video_vae_bf16.safetensors: ")
               and "not pinned in the manifest" in line for line in hunyuan)
    assert hunyuan[-1] == (
        "warn     model files: not pinned (the manifest has no size and sha256 for them): "
        "hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors, clip_l.safetensors, "
        "hunyuan_video_vae_bf16.safetensors, llava_llama3_vision.safetensors; provision checks them against "
        "the size and sha256 their server publishes, or warns")
    assert not target.exists()  # a dry run touches nothing
    assert "no such model group" in cli("comfy", "provision", "--path", str(target), "--model", "nope",
                                        "--dry-run", check_code=2).stderr


class RangeServer:
    """Serves one file over HTTP with Range support; records the Range headers it saw. With
    ``published`` headers it answers like Hugging Face's resolve URL: a HEAD or GET on it is a 302
    to the CDN path, carrying those headers (X-Linked-Size, X-Linked-Etag)."""

    def __init__(self, payload: bytes, published: dict[str, str] | None = None) -> None:
        self.payload = payload
        self.ranges: list[str | None] = []
        self.heads = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _redirected(self) -> bool:
                if published is None or self.path != "/models/test.safetensors":
                    return False
                self.send_response(302)
                self.send_header("Location", "/cdn/blob")
                for name, value in published.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True

            def do_HEAD(self) -> None:
                outer.heads += 1
                if not self._redirected():
                    self.send_response(405)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def do_GET(self) -> None:
                if self._redirected():
                    return
                wanted = self.headers.get("Range")
                outer.ranges.append(wanted)
                start = int(wanted.split("=")[1].split("-")[0]) if wanted else 0
                if start >= len(outer.payload):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(outer.payload)}")
                    self.end_headers()
                    return
                body = outer.payload[start:]
                self.send_response(206 if wanted else 200)
                if wanted:
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/models/test.safetensors"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_resumes_and_verifies(tmp_path):
    payload = os.urandom(300_000)
    digest = hashlib.sha256(payload).hexdigest()
    server = RangeServer(payload)
    try:
        target = tmp_path / "models" / "test.safetensors"
        target.parent.mkdir(parents=True)
        target.with_name("test.safetensors.part").write_bytes(payload[:120_000])  # an interrupted download
        download(server.url, target, size=len(payload), sha256=digest)
        assert target.read_bytes() == payload and server.ranges == ["bytes=120000-"]
        assert not target.with_name("test.safetensors.part").exists()

        bad = tmp_path / "bad.safetensors"
        with pytest.raises(ProvisionError, match="sha256 .* does not match the one the manifest gives, 0+; the file was removed"):
            download(server.url, bad, sha256="0" * 64)
        assert not bad.exists() and not bad.with_name("bad.safetensors.part").exists()
        with pytest.raises(ProvisionError, match="got 300,000 bytes, the manifest says 5"):
            download(server.url, tmp_path / "short.bin", size=5)

        local = tmp_path / "source.bin"
        local.write_bytes(payload)
        copied = tmp_path / "copied.bin"
        copied.with_name("copied.bin.part").write_bytes(payload[:1000])
        download(local.as_uri(), copied, sha256=digest)
        assert copied.read_bytes() == payload
    finally:
        server.close()


def unpinned_manifest(path: Path, url: str) -> Path:
    path.write_text(f"""
schema = 1
[comfyui]
repo = "https://example.invalid/ComfyUI.git"
commit = "0000000"
[[models]]
file = "test.safetensors"
dir = "models/checkpoints"
url = "{url}"
for = ["test-model"]
""")
    return path


@pytest.mark.parametrize("case", ["published", "published wrong", "not published"])
def test_provision_checks_an_unpinned_file_against_what_its_server_publishes(tmp_path, case):
    """A file the manifest does not pin is checked against the LFS size and sha256 a Hugging
    Face-style server sends on a HEAD of its resolve URL, and the values to pin are printed; a
    server whose file does not match fails the step and keeps nothing; one that publishes nothing
    gets a warning naming the file."""
    payload = os.urandom(40_000)
    digest = hashlib.sha256(payload).hexdigest()
    published = {"published": {"X-Linked-Size": str(len(payload)), "X-Linked-Etag": f'"{digest}"'},
                 "published wrong": {"X-Linked-Size": str(len(payload)), "X-Linked-Etag": f'"{"ab" * 32}"'},
                 "not published": {"ETag": '"a-git-blob-id-is-no-sha256"'}}[case]
    server = RangeServer(payload, published)
    manifest = load_manifest(unpinned_manifest(tmp_path / "manifest.toml", server.url))
    target = tmp_path / "ComfyUI"
    logged: list[str] = []
    try:
        assert not manifest.models[0].verified
        if case == "published wrong":
            with pytest.raises(ProvisionError, match=f"sha256 {digest} does not match the one its server gives, "
                                                     f"(ab)+; the file was removed"):
                install_model(manifest.models[0], target, logged.append)
            assert not any((target / "models" / "checkpoints").iterdir())  # neither the file nor a .part
            return
        step, checked = install_model(manifest.models[0], target, logged.append)
        assert (target / "models" / "checkpoints" / "test.safetensors").read_bytes() == payload
        assert server.heads == 1 and step.kind == "download"
        if case == "published":
            assert checked and logged[-1] == (
                "note     models/checkpoints/test.safetensors: checked against the size and sha256 its server "
                f'publishes; to pin them in the manifest: size = {len(payload)}, sha256 = "{digest}"')
            # present now: checked again against the published sha256, not fetched again
            again, checked = install_model(manifest.models[0], target, logged.append)
            assert again.kind == "ok" and checked and server.ranges == [None]
        else:
            assert not checked and logged[-1] == ("warn     models/checkpoints/test.safetensors: no sha256 in the "
                                                  "manifest and none published; the download is not checked")
    finally:
        server.close()


def test_published_checksum_reads_only_an_lfs_sha256(tmp_path):
    payload = b"x" * 10
    for headers, expected in [
        ({"X-Linked-Size": "10", "X-Linked-Etag": f'W/"{"C" * 64}"'}, Published(10, "c" * 64)),
        ({"X-Linked-Size": "10", "X-Linked-Etag": '"0123456789abcdef0123456789abcdef01234567"'}, None),  # git sha1
        ({"X-Linked-Etag": f'"{"c" * 64}"'}, None),  # no size
        ({"X-Linked-Size": "0", "X-Linked-Etag": f'"{"c" * 64}"'}, None),
    ]:
        server = RangeServer(payload, headers)
        try:
            assert published_checksum(server.url) == expected, headers
        finally:
            server.close()
    assert published_checksum((tmp_path / "local.bin").as_uri()) is None
    assert published_checksum("http://127.0.0.1:9/nothing-listens-here", timeout=2) is None


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


def _repo(path: Path, files: dict[str, str]) -> tuple[str, str]:
    """A git repository with two commits; returns (first, second) commit ids."""
    path.mkdir(parents=True)
    _git("init", "--quiet", cwd=path)
    ids = []
    for version in (1, 2):
        for name, text in files.items():
            (path / name).write_text(text.replace("VERSION", str(version)))
        _git("add", ".", cwd=path)
        _git("commit", "--quiet", "-m", f"v{version}", cwd=path)
        ids.append(_git("rev-parse", "HEAD", cwd=path))
    return ids[0], ids[1]


def test_provision_installs_pinned_sources_and_models_then_up_runs_it(tmp_path, cli):
    """ComfyUI and a pack from git at pinned (older) commits, a model over HTTP, checked; then the
    provisioned checkout is what `reelgraph comfy up` starts."""
    object_info = full_instance_file(tmp_path)
    shim = write_comfy_shim(tmp_path / "shim", object_info).joinpath("main.py").read_text()
    comfy_first, _ = _repo(tmp_path / "src" / "ComfyUI", {"main.py": shim + "# VERSION\n"})
    pack_first, _ = _repo(tmp_path / "src" / "pack", {"__init__.py": "# pack VERSION\n"})
    payload = os.urandom(50_000)
    server = RangeServer(payload)
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(f"""
schema = 1
[comfyui]
repo = "{(tmp_path / 'src' / 'ComfyUI').as_posix()}"
commit = "{comfy_first[:8]}"
requirements = "requirements.txt"
[[custom_nodes]]
name = "TestPack"
repo = "{(tmp_path / 'src' / 'pack').as_posix()}"
commit = "{pack_first[:8]}"
[[models]]
file = "test.safetensors"
dir = "models/checkpoints"
url = "{server.url}"
size = {len(payload)}
sha256 = "{hashlib.sha256(payload).hexdigest()}"
for = ["test-model"]
""")
    target = tmp_path / "ComfyUI"
    try:
        out = cli("comfy", "provision", "--path", str(target), "--manifest", str(manifest), "--model", "test-model",
                  "--no-deps", check_code=0).stdout
    finally:
        server.close()
    assert f"clone    ComfyUI: {(tmp_path / 'src' / 'ComfyUI').as_posix()} into {target}" in out
    assert _git("rev-parse", "HEAD", cwd=target) == comfy_first
    assert _git("rev-parse", "HEAD", cwd=target / "custom_nodes" / "TestPack") == pack_first
    assert (target / "models" / "checkpoints" / "test.safetensors").read_bytes() == payload
    again = cli("comfy", "provision", "--path", str(target), "--manifest", str(manifest), "--model", "test-model",
                "--no-deps", "--dry-run", check_code=0).stdout
    assert [line.split()[0] for line in again.splitlines()] == ["ok", "ok", "ok"]

    managed = ManagedInstance(target, "gpu0", tmp_path / "state", ready_timeout=60)
    managed.start()
    try:
        assert requests.get(f"{managed.url}/api/system_stats", timeout=5).json()["system"]["comfyui_version"] == "0.26.0"
        assert (tmp_path / "state" / "gpu0" / "input").is_dir()
    finally:
        managed.stop()
