"""Inside ComfyUI, a pack node placed on ComfyUI (video.i2v with Wan/Hunyuan/Kling, image.generate
with SDXL/Flux, video.interpolate with RIFE/core) runs as the stock nodes the engine would submit.

The node's implementation runs as in the engine up to the job (checks, the fitted start image) and
raises ``placement.Deferred``. The pack then compiles the job's workflow for this ComfyUI's own
schemas and model files, and returns it as a node expansion (``{"result", "expand"}``): the
workflow minus its save nodes, plus one :data:`RESULT_NODE` that takes what the save node would
have saved (frames, or a VIDEO) and applies the node's ``Contract``: the same frame count, rate,
size and placement JSON as on an instance. Its result files land in ComfyUI's temp folder like
every pack node's, previewed on the original node (expanded nodes show under their parent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..comfy_workflows.errors import CompileError
from ..comfy_workflows.placement import Contract, Deferred
from ..comfy_workflows.pool import BuildTarget
from ..nodes.types import NodeContext, NodeFailure
from . import host
from .declare import RESULT_NODE, class_name

INSTANCE = "this ComfyUI"
# The inputs of save nodes that take what they save.
SAVED_INPUTS = ("images", "video")


class ExpansionError(Exception):
    """The node cannot run as stock nodes here; the message names the node and the cause."""


def expand(deferred: Deferred, unique_id: str) -> dict[str, Any]:
    """The expansion ComfyUI executes in place of the node."""
    job = deferred.job
    try:
        uploads = {role: host.stage_input(path) for role, path in job.uploads.items()}
        compiled = job.build(BuildTarget(host.object_info(), INSTANCE, uploads, f"reelgraph/{unique_id}"))
    except CompileError as exc:
        raise ExpansionError(str(exc)) from None
    prefix = host.graph_prefix(unique_id)
    saved = _saved_link(compiled.prompt, compiled.output_nodes, job.recipe_node)

    def renamed(value: Any) -> Any:
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] in compiled.prompt:
            return [prefix + value[0], value[1]]
        return value

    graph = {prefix + node_id: {"class_type": node["class_type"],
                                "inputs": {name: renamed(value) for name, value in node["inputs"].items()}}
             for node_id, node in compiled.prompt.items() if node_id not in compiled.output_nodes}
    provenance = {"placement": "comfy", "instance": INSTANCE, "comfyui_version": host.comfyui_version(),
                  **compiled.environment()}
    result_id = f"{prefix}result"
    graph[result_id] = {"class_type": class_name(RESULT_NODE),
                        "inputs": {"media": renamed(saved), "fps": float(compiled.fps),
                                   "contract": deferred.contract.to_json(),
                                   "provenance": json.dumps(provenance, sort_keys=True)}}
    return {"result": ([result_id, 0], [result_id, 1]), "expand": graph}


def _saved_link(prompt: Mapping[str, Any], output_nodes: list[str], recipe_node: str) -> list[Any]:
    """What the workflow's one save node saves: the link into its images or video input."""
    links = [value for node_id in output_nodes for name, value in prompt[node_id]["inputs"].items()
             if name in SAVED_INPUTS and isinstance(value, list)]
    if len(links) != 1:
        raise ExpansionError(f"{recipe_node}: the compiled workflow saves {len(links)} things; expected one")
    return links[0]


def finish(inputs: Mapping[str, Any], context: NodeContext) -> tuple[Path, dict[str, Any]]:
    """The result node: the saved media as a file, then the node's contract applied to it."""
    contract = Contract.from_json(str(inputs["contract"]))
    provenance = json.loads(str(inputs["provenance"]))
    source = media_file(inputs["media"], float(inputs.get("fps") or 0), contract.port, context.work_dir)
    outputs = contract.apply(context, source, provenance)
    return outputs[contract.port], outputs["placement"]


def media_file(media: Any, fps: float, port: str, folder: Path) -> Path:
    """Frames (ComfyUI's IMAGE: a [frames, height, width, channels] tensor of 0..1) or a core
    VIDEO (Kling's clip, CreateVideo's output: ``get_components()``) as a PNG or an MP4."""
    components = getattr(media, "get_components", None)
    if callable(components):
        parts = components()
        media, fps = parts.images, float(parts.frame_rate)
    frames = _as_array(media)
    if port == "image":
        from PIL import Image

        out = folder / "comfy.png"
        Image.fromarray(_bytes_of(frames[0])).save(out)
        return out
    if fps <= 0:
        raise NodeFailure("the frames from ComfyUI came without a frame rate")
    return _encode(frames, fps, folder / "comfy.mp4")


def _as_array(media: Any) -> Any:
    import numpy

    if hasattr(media, "detach"):  # a torch tensor, wherever it lives
        media = media.detach().cpu().float().numpy()
    frames = numpy.asarray(media)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] not in (1, 3, 4):
        raise NodeFailure(f"ComfyUI gave frames of shape {tuple(frames.shape)}; expected [frames, height, width, 3]")
    return frames


def _bytes_of(frame: Any) -> Any:
    """One frame as height x width x 3 bytes (grey repeated, alpha dropped)."""
    import numpy

    rgb = numpy.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame[..., :3]
    return numpy.clip(numpy.rint(rgb * 255.0), 0, 255).astype(numpy.uint8)


def _encode(frames: Any, fps: float, out: Path) -> Path:
    """Frames to a near-lossless H.264 MP4 (the contract re-encodes it), one frame at a time so a
    long clip never exists twice in memory."""
    import ffmpeg

    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2  # yuv420p wants even sides
    stream = (ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{frames.shape[2]}x{frames.shape[1]}",
                           r=f"{fps:.6f}")
              .filter("crop", width, height, 0, 0)
              .output(str(out), vcodec="libx264", preset="superfast", crf=12, pix_fmt="yuv420p")
              .overwrite_output().global_args("-hide_banner", "-nostdin", "-loglevel", "error"))
    process = stream.run_async(pipe_stdin=True, pipe_stderr=True)
    try:
        for frame in frames:
            process.stdin.write(_bytes_of(frame).tobytes())
        process.stdin.close()
    except BrokenPipeError:
        pass  # ffmpeg stopped early; its message follows
    error = process.stderr.read().decode("utf-8", "replace").strip()
    if process.wait() != 0:
        raise NodeFailure(f"ffmpeg failed to encode ComfyUI's frames: {error.splitlines()[-1] if error else 'no message'}")
    return out
