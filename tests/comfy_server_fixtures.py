"""Shared helpers for the ComfyUI backend tests: the real /object_info dumps and test servers."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reelgraph.comfy_workflows.schema import ObjectInfo, with_model_files

SHARED_COMFY = Path(__file__).resolve().parents[2] / "shared" / "comfy"
WITH_MODELS = "object_info-0.26.0-with-models.json"
NO_MODELS = "object_info-0.26.0.json"
OLD = "object_info-0.3.64.json"

@functools.cache
def raw_dump(name: str) -> dict[str, Any]:
    path = SHARED_COMFY / name
    if not path.is_file():
        pytest.skip(f"real /object_info dump {path} not found (../shared/comfy is absent); conformance not checked")
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def dump(name: str) -> ObjectInfo:
    return ObjectInfo(raw_dump(name))


@functools.cache
def full_instance(name: str) -> ObjectInfo:
    """A dump as if every model file our compiler names were installed."""
    from reelgraph.comfy_workflows.compiler import STILL_MODELS, VIDEO_MODELS

    files: dict[str, list[str]] = {}
    folders = {"unet": "diffusion_models", "unet_high": "diffusion_models", "unet_low": "diffusion_models",
               "text_encoder": "text_encoders", "clip_l": "text_encoders", "llm": "text_encoders",
               "vae": "vae", "clip_vision": "clip_vision", "checkpoint": "checkpoints",
               "lora_high": "loras", "lora_low": "loras"}
    for model in [*VIDEO_MODELS.values(), *STILL_MODELS.values()]:
        for role, filename in model.files.items():
            files.setdefault(folders[role], []).append(filename)
    files["frame_interpolation"] = ["film_net_fp16.safetensors"]
    return ObjectInfo(with_model_files(raw_dump(name), files))


@pytest.fixture
def comfy(tmp_path: Path) -> Iterator[Any]:
    """A ComfyUI protocol test server in this process, on the real schemas with every model file."""
    from reelgraph.comfy_workflows.testserver import ComfyTestServer, Faults

    server = ComfyTestServer(full_instance(WITH_MODELS), tmp_path / "comfy", faults=Faults(step_seconds=0.002)).start()
    yield server
    server.stop()


class ServerProcess:
    """The test server as its own process (so that a crash can really kill it)."""

    def __init__(self, root: Path, object_info: str = WITH_MODELS, faults: dict[str, Any] | None = None) -> None:
        raw_dump(object_info)  # skips when the dumps are absent
        command = [sys.executable, "-m", "reelgraph.comfy_workflows.testserver", "--object-info",
                   str(SHARED_COMFY / object_info), "--root", str(root), "--port", "0",
                   "--faults", json.dumps(faults or {})]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "To see the GUI go to:" not in line:
            line = self.process.stdout.readline() if self.process.stdout else ""
            if not line and self.process.poll() is not None:
                raise RuntimeError(f"test server exited: {self.process.stderr.read() if self.process.stderr else ''}")
        self.url = line.split("go to:", 1)[1].strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()


def full_instance_file(folder: Path, name: str = WITH_MODELS) -> Path:
    """``full_instance`` written to a file, for server processes."""
    path = folder / f"full-{name}"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(full_instance(name).raw), encoding="utf-8")
    return path


def write_comfy_shim(folder: Path, object_info: Path, faults: dict[str, Any] | None = None,
                     exit_with: str | None = None) -> Path:
    """A folder whose ``main.py`` takes ComfyUI's flags and runs the test server: a stand-in
    ComfyUI checkout for ``reelgraph comfy up --path``. It prints CUDA_VISIBLE_DEVICES first, so
    tests can read the GPU pinning from the instance's log. ``exit_with``: fail at startup instead."""
    folder.mkdir(parents=True, exist_ok=True)
    if exit_with is not None:
        body = f"import sys\nprint({exit_with!r}, file=sys.stderr)\nsys.exit(3)\n"
    else:
        body = (
            "import os\nimport sys\n"
            "print('CUDA_VISIBLE_DEVICES=' + os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>'), flush=True)\n"
            "from reelgraph.comfy_workflows.testserver import main\n"
            f"main(['--object-info', {str(object_info)!r}, '--faults', {json.dumps(json.dumps(faults or {}))},"
            " *sys.argv[1:]])\n"
        )
    (folder / "main.py").write_text(body, encoding="utf-8")
    return folder
