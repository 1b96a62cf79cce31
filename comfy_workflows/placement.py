"""The ComfyUI placement of the node types that have one (video.i2v, image.generate,
video.interpolate): node inputs -> a :class:`ComfyJob` -> the pool -> the node's usual contract.

Whatever model made it, a node's output keeps the local placement's contract, so the engine and
downstream nodes treat every model alike: video.i2v gives exactly ``round(seconds * fps)``
frames of ``width`` x ``height`` H.264, image.generate exactly ``width`` x ``height`` pixels,
video.interpolate the same duration at the new rate. Models generate at their native size and
frame rate (the aspect of the request, about the model's pixel count); ffmpeg then scales,
crops and retimes locally. A slot longer than a model's longest clip gets the longest clip,
slowed down to fill it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from ..nodes.builtin.ffmpeg_tools import run_ffmpeg
from ..nodes.pipeline.check import frame_rate, frame_total, probe, video_stream
from ..nodes.pipeline.encoding import INTERMEDIATE, frame_count
from ..nodes.providers.http import secret
from ..nodes.types import NodeContext, NodeFailure
from .client import ProgressEvent
from .compiler import (
    KLING_SECONDS,
    STILL_MODELS,
    VIDEO_MODELS,
    Interpolation,
    KlingParams,
    StillParams,
    VideoOutput,
    VideoParams,
    compile_interpolation,
    compile_kling_i2v,
    compile_still,
    compile_video,
    fit_area,
)
from .pool import BuildTarget, ComfyJob, ComfyPool, JobResult

LOCAL_I2V, LOCAL_STILL = "kenburns", "pillow"
# video.i2v's `model` values; full compiler names of image-capable models are accepted too.
I2V_ALIASES: dict[str, str] = {"wan2.1": "wan2.1-i2v-480p", "wan2.2": "wan2.2-14b-i2v", "wan2.2-5b": "wan2.2-5b",
                               "hunyuan": "hunyuan-i2v", "kling": "kling"}
STILL_ALIASES: dict[str, str] = {"sdxl": "sdxl", "flux": "flux-dev", "flux-schnell": "flux-schnell"}
INTERPOLATION_METHODS = ("rife", "core")
# Ken Burns motions as camera words for a generative model's prompt.
CAMERA: dict[str, str] = {"none": "static camera", "zoom_in": "slow camera push in", "zoom_out": "slow camera pull back",
                          "pan_left": "camera pans left", "pan_right": "camera pans right",
                          "pan_up": "camera tilts up", "pan_down": "camera tilts down"}
KLING_ENV = "COMFY_ORG_API_KEY"


def i2v_models() -> list[str]:
    image_models = [name for name, m in VIDEO_MODELS.items() if m.image != "none"]
    return [LOCAL_I2V, *I2V_ALIASES, *image_models]


def still_models() -> list[str]:
    return [LOCAL_STILL, *STILL_ALIASES, *(n for n in STILL_MODELS if n not in STILL_ALIASES.values())]


def video_model(model: str) -> str:
    """The compiler's model name for a video.i2v ``model`` value (``kling`` stays ``kling``)."""
    name = I2V_ALIASES.get(model, model)
    if name != "kling" and (name not in VIDEO_MODELS or VIDEO_MODELS[name].image == "none"):
        raise NodeFailure(f"input 'model': {model!r} is not one of {', '.join(i2v_models())}")
    return name


def still_model(model: str) -> str:
    name = STILL_ALIASES.get(model, model)
    if name not in STILL_MODELS:
        raise NodeFailure(f"input 'model': {model!r} is not one of {', '.join(still_models())}")
    return name


def require_pool(ctx: NodeContext, what: str) -> ComfyPool:
    if ctx.comfy is None:
        raise NodeFailure(f"{what} needs a ComfyUI instance: start one with `reelgraph comfy up` or pass `--comfy URL`")
    return ctx.comfy


def label(ctx: NodeContext) -> str:
    return ctx.node_id if ctx.element is None else f"{ctx.node_id}[{ctx.element}]"


# ---------------------------------------------------------------------------------------------
# jobs (also what `reelgraph comfy doctor` compiles)


def i2v_job(name: str, model: str, image: Path | None, *, prompt: str, motion: str, seed: int, seconds: float,
            width: int, height: int) -> ComfyJob:
    compiled_name = video_model(model)
    hint = CAMERA.get(motion, motion.replace("_", " "))
    uploads = {"image": image} if image is not None else {}
    if compiled_name == "kling":
        key = secret(KLING_ENV, "video.i2v model 'kling' (a Comfy.org API node)")
        clip = min(seconds, KLING_SECONDS[-1])

        def build_kling(target: BuildTarget) -> Any:
            params = KlingParams(prompt, target.inputs["image"], seconds=clip, width=width, height=height, motion=hint)
            return compile_kling_i2v(params, target.info, recipe_node=name, instance=target.instance,
                                     filename_prefix=target.prefix)

        return ComfyJob(name, build_kling, "kling", uploads, heavy=False, extra_data={"api_key_comfy_org": key})
    spec = VIDEO_MODELS[compiled_name]
    gen_width, gen_height = generation_size(compiled_name, width, height)
    clip = min(seconds, (spec.max_frames - 1) / spec.fps)

    def build(target: BuildTarget) -> Any:
        params = VideoParams(compiled_name, prompt, seed=seed, width=gen_width, height=gen_height, seconds=clip,
                             motion=hint, image=target.inputs["image"])
        return compile_video(params, target.info, recipe_node=name, instance=target.instance,
                             output=VideoOutput(filename_prefix=target.prefix))

    return ComfyJob(name, build, compiled_name, uploads, heavy=True)


def generation_size(compiled_name: str, width: int, height: int) -> tuple[int, int]:
    spec = VIDEO_MODELS.get(compiled_name) or STILL_MODELS[compiled_name]
    return fit_area(width, height, spec.width, spec.height, spec.size_step)


def still_job(name: str, model: str, *, prompt: str, style: str, seed: int, width: int, height: int) -> ComfyJob:
    compiled_name = still_model(model)
    gen_width, gen_height = generation_size(compiled_name, width, height)
    text = ", ".join(part for part in (" ".join(prompt.split()), style.strip()) if part)

    def build(target: BuildTarget) -> Any:
        params = StillParams(compiled_name, text, seed=seed, width=gen_width, height=gen_height)
        return compile_still(params, target.info, recipe_node=name, instance=target.instance,
                             filename_prefix=target.prefix)

    return ComfyJob(name, build, compiled_name, {}, heavy=True)


def interpolation_job(name: str, method: str, video: Path | None, *, source_fps: float, multiplier: int) -> ComfyJob:
    if method not in INTERPOLATION_METHODS:
        raise NodeFailure(f"input 'method': {method!r} is not one of {', '.join(INTERPOLATION_METHODS)} on ComfyUI")
    interpolation = Interpolation(multiplier, method)  # type: ignore[arg-type]
    family = f"rife:{interpolation.rife_checkpoint}" if method == "rife" else f"core:{interpolation.core_model}"

    def build(target: BuildTarget) -> Any:
        return compile_interpolation(target.inputs["video"], source_fps, target.info, recipe_node=name,
                                     instance=target.instance, interpolation=interpolation,
                                     output=VideoOutput(filename_prefix=target.prefix))

    return ComfyJob(name, build, family, {"video": video} if video is not None else {}, heavy=False)


def job_for_node(type_id: str, inputs: Mapping[str, Any], name: str) -> ComfyJob | None:
    """The job a node would send, from its literal inputs (links take small stand-in values);
    None when it runs locally. For checking instances without running anything."""
    if type_id == "video.i2v" and inputs.get("model", LOCAL_I2V) != LOCAL_I2V:
        return i2v_job(name, str(inputs["model"]), None, prompt=_text(inputs.get("prompt")),
                       motion=_text(inputs.get("motion")) or "zoom_in", seed=_int(inputs.get("seed"), 0),
                       seconds=_number(inputs.get("seconds"), 1.0), width=_int(inputs.get("width"), 1080),
                       height=_int(inputs.get("height"), 1920))
    if type_id == "image.generate" and inputs.get("model", LOCAL_STILL) != LOCAL_STILL:
        return still_job(name, str(inputs["model"]), prompt=_text(inputs.get("prompt")) or "check",
                         style=_text(inputs.get("style")), seed=_int(inputs.get("seed"), 0),
                         width=_int(inputs.get("width"), 1080), height=_int(inputs.get("height"), 1920))
    if type_id == "video.interpolate" and inputs.get("method") in INTERPOLATION_METHODS:
        return interpolation_job(name, str(inputs["method"]), None, source_fps=16.0, multiplier=2)
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


# ---------------------------------------------------------------------------------------------
# node implementations' ComfyUI path


def _run(ctx: NodeContext, pool: ComfyPool, job: ComfyJob) -> JobResult:
    def progress(event: ProgressEvent) -> None:
        if event.kind == "progress" and event.max:
            ctx.progress(event.value / event.max, f"{event.class_type} step {event.value}/{event.max} on ComfyUI")
        elif event.kind == "executing":
            ctx.progress(0.0, f"{event.class_type} on ComfyUI")

    result = pool.run(job, ctx.path("comfy"), cancel=ctx.cancelled, on_progress=progress)
    if not result.files:
        raise NodeFailure(f"ComfyUI instance {result.instance} finished prompt {result.prompt_id} without an output file")
    return result


def run_i2v(ctx: NodeContext, *, image: Path, seconds: float, fps: int, width: int, height: int, motion: str,
            prompt: str, seed: int, model: str) -> dict[str, Any]:
    compiled_name = video_model(model)
    pool = require_pool(ctx, f"video.i2v model {model!r}")
    frames = frame_count(seconds, fps)
    if compiled_name == "kling":
        aspect = (width, height)
    else:
        aspect = generation_size(compiled_name, width, height)
    start = ctx.path("start.png")
    try:
        with Image.open(image) as opened:
            ImageOps.fit(ImageOps.exif_transpose(opened).convert("RGB"), aspect,
                         method=Image.Resampling.LANCZOS).save(start)
    except (UnidentifiedImageError, OSError) as exc:
        raise NodeFailure(f"input 'image' is not an image Pillow can read: {exc}") from None
    job = i2v_job(label(ctx), model, start, prompt=prompt, motion=motion, seed=seed, seconds=seconds,
                  width=width, height=height)
    result = _run(ctx, pool, job)
    out = ctx.path("motion.mp4")
    conform(result.files[0], out, frames, fps, (width, height), stretch=True)
    return {"video": out, "placement": {**result.provenance(), "model": model}}


def run_still(ctx: NodeContext, *, prompt: str, style: str, width: int, height: int, seed: int,
              model: str) -> dict[str, Any]:
    still_model(model)
    pool = require_pool(ctx, f"image.generate model {model!r}")
    result = _run(ctx, pool, still_job(label(ctx), model, prompt=prompt, style=style, seed=seed,
                                       width=width, height=height))
    out = ctx.path("generated.png")
    try:
        with Image.open(result.files[0]) as opened:
            ImageOps.fit(opened.convert("RGB"), (width, height), method=Image.Resampling.LANCZOS).save(out, format="PNG")
    except (UnidentifiedImageError, OSError) as exc:
        raise NodeFailure(f"ComfyUI instance {result.instance} returned an image Pillow cannot read: {exc}") from None
    return {"image": out, "placement": {**result.provenance(), "model": model}}


def run_interpolation(ctx: NodeContext, *, video: Path, fps: int, method: str) -> dict[str, Any]:
    if method not in INTERPOLATION_METHODS:
        raise NodeFailure(f"input 'method': {method!r} is not one of {', '.join(INTERPOLATION_METHODS)} on ComfyUI")
    pool = require_pool(ctx, f"video.interpolate method {method!r}")
    stream = video_stream(probe(video, "video"), "video")
    source = frame_rate(stream)
    if source <= 0:
        raise NodeFailure("input 'video': its frame rate is unknown")
    duration = Fraction(frame_total(video, stream)) / source
    frames = frame_count(float(duration), fps, "video")
    out = ctx.path("interpolated.mp4")
    if fps <= source:  # fewer frames: nothing to interpolate
        conform(video, out, frames, fps)
        return {"video": out, "placement": {"placement": "local", "method": "decimate"}}
    multiplier = min(16, math.ceil(fps / source))
    job = interpolation_job(label(ctx), method, video, source_fps=float(source), multiplier=multiplier)
    result = _run(ctx, pool, job)
    conform(result.files[0], out, frames, fps, (int(stream["width"]), int(stream["height"])))
    return {"video": out, "placement": {**result.provenance(), "method": method, "multiplier": multiplier}}


def conform(source: Path, out: Path, frames: int, fps: int, size: tuple[int, int] | None = None,
            stretch: bool = False) -> None:
    """Exactly ``frames`` frames at ``fps`` (cover-scaled to ``size``): a clip shorter than that is
    slowed down to fill it when ``stretch``, else its last frame is held; a longer one is cut."""
    stream = video_stream(probe(source, "ComfyUI output"), "ComfyUI output")
    rate = frame_rate(stream) or Fraction(fps)
    have = Fraction(frame_total(source, stream)) / rate
    factor = max(1.0, float(Fraction(frames, fps) / have)) if stretch and have > 0 else 1.0
    picture = ffmpeg.input(str(source)).video.filter("setpts", expr=f"(PTS-STARTPTS)*{factor:.9f}")
    if size is not None:
        picture = (picture.filter("scale", size[0], size[1], force_original_aspect_ratio="increase")
                   .filter("crop", size[0], size[1]).filter("setsar", "1"))
    picture = (picture.filter("fps", fps=fps)
               .filter("tpad", stop_mode="clone", stop=max(2, fps))
               .filter("trim", end_frame=frames)
               .filter("setpts", expr=f"N/({fps}*TB)"))
    run_ffmpeg(picture.output(str(out), vframes=frames, r=fps, an=None, movflags="+faststart", **INTERMEDIATE),
               f"fit the ComfyUI clip to {frames} frames at {fps} fps")
