"""ComfyUI dispatch benchmark: 20 scenes (SDXL still -> Wan 2.1 i2v -> RIFE) on 1 and 2 instances.

    .venv/bin/python -m reelgraph.tests.bench.comfy_bench [--scenes 20] [--scale 0.5] [--json FILE]
        [--instances 1,2] [--runners pool,naive]

Each instance is a ComfyUI-protocol test server process (started, warmed up and supervised like
a real one) whose stand-in nodes take fixed GPU times and whose model loads cost time, with a
VRAM stand-in (at most 5 model files loaded: Wan's four plus RIFE fit, SDXL does not fit beside
them). Two runners do the same work and the same local post-processing:

* **pool** — the recipe through the engine with a ``ComfyPool`` (late placement, queues kept
  full, work grouped by model, ``/free`` between heavy families);
* **naive** — scene by scene, one thread per instance, each stage submitted and awaited in turn.

Reported per run, from the servers' own timelines (warm-up excluded): GPU busy fraction from the
first to the last GPU job (target >= 98%), model loads per instance by family (target: one per
family per instance), and wall time over the physical limit (the sum of GPU compute times /
instances). Timings are reported, never asserted; the exit status is 1 only when a run fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
from PIL import Image, ImageOps
from reelgraph.comfy_workflows.client import ComfyClient
from reelgraph.comfy_workflows.instances import ManagedInstance, Supervisor
from reelgraph.comfy_workflows.placement import (
    conform,
    i2v_job,
    interpolation_job,
    still_job,
)
from reelgraph.comfy_workflows.pool import BuildTarget, ComfyJob, ComfyPool
from reelgraph.comfy_workflows.schema import ObjectInfo
from reelgraph.engine import Engine, RunOptions
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline import NODE_TYPES as PIPELINE_TYPES
from reelgraph.nodes.registry import NodeRegistry

SHARED_COMFY = Path(__file__).resolve().parents[3] / "shared" / "comfy"
WITH_MODELS = "object_info-0.26.0-with-models.json"
SIZE = (64, 112)
SECONDS, FPS, SMOOTH_FPS = 1.0, 16, 32
FAMILIES = {"sdxl": ("sd_xl",), "wan2.1-i2v-480p": ("wan2.1_i2v", "umt5", "clip_vision_h", "wan_2.1_vae"),
            "rife": ("rife47",)}


@dataclass
class Measure:
    instances: int
    runner: str
    scenes: int
    wall_s: float
    gpu_busy: float  # all instances, first to last GPU job
    gpu_busy_min: float  # the least busy instance, over its own first to last job
    compute_s: float  # GPU time without model loads, summed
    load_s: float
    loads: dict[str, dict[str, int]]  # instance -> family -> times loaded
    limit_ratio: float  # wall / (compute / instances)
    loaded_limit_ratio: float  # wall / ((compute + loads) / instances): what remains is dispatch and CPU work
    frees: int = 0


def settings(scale: float) -> dict[str, Any]:
    """Per-node GPU times and model-load costs (seconds), scaled."""
    return {
        "step_seconds": 0.024 * scale,  # SDXL 25 steps, Wan 20 steps
        "node_seconds": {"VAEDecode": 0.08 * scale, "RIFE VFI": 0.16 * scale, "WanImageToVideo": 0.04 * scale,
                         "CLIPVisionEncode": 0.02 * scale},
        "model_load_seconds": {"sd_xl": 1.2 * scale, "wan2.1_i2v": 1.6 * scale, "umt5": 0.6 * scale,
                               "clip_vision_h": 0.2 * scale, "wan_2.1_vae": 0.1 * scale, "rife47": 0.2 * scale},
        "max_loaded_models": 5,
    }


def object_info_file(folder: Path) -> Path:
    """The real 0.26 dump with every model file the compiler names (as the tests' full_instance)."""
    from reelgraph.comfy_workflows.compiler import STILL_MODELS, VIDEO_MODELS
    from reelgraph.comfy_workflows.schema import with_model_files

    folders = {"unet": "diffusion_models", "unet_high": "diffusion_models", "unet_low": "diffusion_models",
               "text_encoder": "text_encoders", "clip_l": "text_encoders", "llm": "text_encoders", "vae": "vae",
               "clip_vision": "clip_vision", "checkpoint": "checkpoints", "lora_high": "loras", "lora_low": "loras"}
    files: dict[str, list[str]] = {}
    for model in [*VIDEO_MODELS.values(), *STILL_MODELS.values()]:
        for role, name in model.files.items():
            files.setdefault(folders[role], []).append(name)
    raw = json.loads((SHARED_COMFY / WITH_MODELS).read_text(encoding="utf-8"))
    path = folder / "object_info.json"
    path.write_text(json.dumps(with_model_files(raw, files)), encoding="utf-8")
    return path


def start_instances(folder: Path, count: int, info: Path, scale: float) -> Supervisor:
    shim = folder / "ComfyUI"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "main.py").write_text(
        "import sys\nfrom reelgraph.comfy_workflows.testserver import main\n"
        f"main(['--object-info', {str(info)!r}, '--faults', {json.dumps(json.dumps(settings(scale)))}, *sys.argv[1:]])\n",
        encoding="utf-8")
    supervisor = Supervisor([ManagedInstance(shim, f"gpu{i}", folder / "state", ready_timeout=60) for i in range(count)])
    supervisor.start()
    return supervisor


def recipe(scenes: int) -> dict[str, Any]:
    text = "|".join(f"scene {i}: a lighthouse at dusk, waves" for i in range(scenes))
    return {
        "reelgraph": 1, "name": "comfy-bench",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": text, "separator": "|"}},
            "still": {"type": "image.generate", "inputs": {"prompt": {"link": ["split", "items"]}, "width": SIZE[0],
                                                           "height": SIZE[1], "model": "sdxl"}},
            "motion": {"type": "video.i2v", "inputs": {"image": {"link": ["still", "image"]}, "seconds": SECONDS,
                                                       "fps": FPS, "width": SIZE[0], "height": SIZE[1],
                                                       "model": "wan2.1", "prompt": {"link": ["split", "items"]}}},
            "smooth": {"type": "video.interpolate", "inputs": {"video": {"link": ["motion", "video"]},
                                                               "fps": SMOOTH_FPS, "method": "rife"}},
        },
        "outputs": {"clips": {"link": ["smooth", "video"]}},
    }


def run_pool(urls: list[tuple[str, str]], scenes: int, work: Path) -> tuple[float, int]:
    from reelgraph.comfy_workflows.pool import ComfyInstance

    engine = Engine(work / "home")
    registry = NodeRegistry([*BUILTIN_TYPES, *PIPELINE_TYPES])
    bound = bind_recipe(parse_recipe(recipe(scenes)), registry, base_dir=work)
    pool = ComfyPool([ComfyInstance(url, name, poll_interval=0.1) for name, url in urls], health_interval=1.0)
    try:
        began = time.perf_counter()
        result = engine.run(bound, RunOptions(workers=pool.min_workers() + 4, comfy=pool))
        wall = time.perf_counter() - began
        frees = sum(s["frees"] for s in pool.stats().values())
    finally:
        pool.close()
        engine.close()
    if result.status != "succeeded":
        raise RuntimeError(f"pool run {result.status}: {[f.error for f in result.failures][:3]}")
    return wall, frees


def run_naive(urls: list[tuple[str, str]], scenes: int, work: Path) -> tuple[float, int]:
    """Scene by scene on each instance: still, then motion, then interpolation, each awaited."""
    failures: list[BaseException] = []

    def one_instance(index: int, name: str, url: str) -> None:
        client = ComfyClient(url, instance=name, poll_interval=0.1)
        info = client.object_info()
        try:
            for scene in range(index, scenes, len(urls)):
                folder = work / f"scene{scene}"
                folder.mkdir(parents=True)
                prompt = f"scene {scene}: a lighthouse at dusk, waves"
                raw = _stage(client, info, still_job(f"still[{scene}]", "sdxl", prompt=prompt, style="", seed=0,
                                                     width=SIZE[0], height=SIZE[1]), folder / "still")
                still = folder / "still.png"
                with Image.open(raw) as opened:
                    ImageOps.fit(opened.convert("RGB"), SIZE).save(still)
                clip = _stage(client, info, i2v_job(f"motion[{scene}]", "wan2.1", still, prompt=prompt,
                                                    motion="zoom_in", seed=0, seconds=SECONDS, width=SIZE[0],
                                                    height=SIZE[1]), folder / "motion")
                motion = folder / "motion.mp4"
                conform(clip, motion, round(SECONDS * FPS), FPS, SIZE, stretch=True)
                smooth = _stage(client, info, interpolation_job(f"smooth[{scene}]", "rife", motion, source_fps=FPS,
                                                                multiplier=SMOOTH_FPS // FPS), folder / "smooth")
                conform(smooth, folder / "smooth.mp4", round(SECONDS * SMOOTH_FPS), SMOOTH_FPS, SIZE)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            failures.append(exc)

    began = time.perf_counter()
    threads = [threading.Thread(target=one_instance, args=(i, name, url)) for i, (name, url) in enumerate(urls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"naive run failed: {failures[0]}")
    return time.perf_counter() - began, 0


def _stage(client: ComfyClient, info: ObjectInfo, job: ComfyJob, dest: Path) -> Path:
    names = {role: client.upload(path, subfolder="bench") for role, path in job.uploads.items()}
    workflow = job.build(BuildTarget(info, client.instance, names, f"bench/{dest.parent.name}/{dest.name}"))
    result = client.run(workflow, download_to=dest)
    return result.files[0]


def measure(urls: list[tuple[str, str]], runner: str, scenes: int, wall: float, since: float, frees: int) -> Measure:
    spans: list[tuple[float, float]] = []
    busy_each, compute, load = [], 0.0, 0.0
    loads: dict[str, dict[str, int]] = {}
    for name, url in urls:
        state = requests.get(f"{url}/admin/state", timeout=10).json()
        jobs = [t for t in state["timeline"] if t["start"] >= since]  # the warm-up ran before
        busy = sum(t["end"] - t["start"] for t in jobs)
        spans += [(t["start"], t["end"]) for t in jobs]
        busy_each.append(busy / (max(t["end"] for t in jobs) - min(t["start"] for t in jobs)))
        load += sum(t["load_seconds"] for t in jobs)
        compute += busy - sum(t["load_seconds"] for t in jobs)
        loads[name] = {family: max((n for f, n in state["loads"].items() if any(k in f for k in keys)), default=0)
                       for family, keys in FAMILIES.items()}
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    busy_all = sum(e - s for s, e in spans) / (len(urls) * span)
    return Measure(len(urls), runner, scenes, round(wall, 3), round(busy_all, 4), round(min(busy_each), 4),
                   round(compute, 3), round(load, 3), loads, round(wall / (compute / len(urls)), 3),
                   round(wall / ((compute + load) / len(urls)), 3), frees)


def bench(count: int, runner: str, scenes: int, scale: float, root: Path, info: Path) -> Measure:
    folder = root / f"{runner}-{count}"
    supervisor = start_instances(folder, count, info, scale)  # fresh processes: nothing loaded, nothing cached
    try:
        urls = [(i.name, i.url) for i in supervisor.instances]
        since = time.time()
        go: Callable[..., tuple[float, int]] = run_pool if runner == "pool" else run_naive
        wall, frees = go(urls, scenes, folder / "work")
        return measure(urls, runner, scenes, wall, since, frees)
    finally:
        supervisor.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--scale", type=float, default=0.5, help="multiplies every simulated GPU and load time")
    parser.add_argument("--instances", default="1,2", help="instance counts to run (default 1,2)")
    parser.add_argument("--runners", default="pool,naive", help="runners to compare (default pool,naive)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not (SHARED_COMFY / WITH_MODELS).is_file():
        print(f"comfy_bench: {SHARED_COMFY / WITH_MODELS} not found; the benchmark needs the real /object_info dump")
        return 1
    results: list[Measure] = []
    with tempfile.TemporaryDirectory(prefix="comfy-bench-") as tmp:
        root = Path(tmp)
        info = object_info_file(root)
        for count in (int(c) for c in args.instances.split(",")):
            for runner in args.runners.split(","):
                try:
                    result = bench(count, runner, args.scenes, args.scale, root, info)
                except Exception as exc:  # noqa: BLE001 - a functional failure: report it, exit 1
                    print(f"comfy_bench: {runner} on {count} instance(s) failed: {exc}", file=sys.stderr)
                    return 1
                results.append(result)
                print(f"  {runner:5} x{count}: {result.wall_s:.2f} s", file=sys.stderr, flush=True)
    print(f"\n{args.scenes} scenes (SDXL still -> Wan 2.1 i2v -> RIFE), GPU times x{args.scale:g}\n")
    header = ("instances", "runner", "wall s", "GPU busy", "min/instance", "loads per instance (sdxl/wan/rife)",
              "wall / limit", "wall / (GPU+loads)", "vs naive")
    rows = []
    for result in results:
        naive = next((r for r in results if r.instances == result.instances and r.runner == "naive"), None)
        loads = ", ".join(f"{name} {'/'.join(str(n) for n in fam.values())}" for name, fam in result.loads.items())
        rows.append((str(result.instances), result.runner, f"{result.wall_s:.2f}", f"{result.gpu_busy:.1%}",
                     f"{result.gpu_busy_min:.1%}", loads, f"{result.limit_ratio:.2f}", f"{result.loaded_limit_ratio:.2f}",
                     f"{result.wall_s / naive.wall_s:.2f}" if naive else "-"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
    print("\ntargets: GPU busy >= 98%; one load per model family per instance (1/1/1); "
          "wall / limit = wall time over (GPU compute / instances), 1.00 is the physical limit")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
