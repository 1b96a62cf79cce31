"""The ComfyUI placement of the node types that have one (video.i2v, image.generate,
video.interpolate): node inputs -> a :class:`ComfyJob` -> the pool -> the node's usual contract.

Whatever model made it, a node's output keeps the local placement's contract, so the engine and
downstream nodes treat every model alike: video.i2v gives exactly ``round(seconds * fps)``
frames of ``width`` x ``height`` H.264, image.generate exactly ``width`` x ``height`` pixels,
video.interpolate the same duration at the new rate. Models generate at their native size and
frame rate (the aspect of the request, about the model's pixel count); ffmpeg then scales,
crops and retimes locally. A slot longer than a model's longest clip gets the longest clip,
slowed down to fill it.

**Fusion.** When the engine says (``ctx.downstream``) that a video.interpolate with a ComfyUI
method will consume an i2v clip (Wan, Hunyuan or Kling) at a higher rate, the i2v compiles one prompt that
generates, saves the clip, interpolates it and saves that too (``compile_video_interpolated``).
The clip gets video.i2v's post-processing, the interpolated clip video.interpolate's (the same
``conform``; slowed down with the clip when the slot is longer than the model's clip), and the
latter is handed to the engine with ``ctx.prefill``: the interpolate execution is recorded without
a prompt of its own. The interpolation runs on the model's own frames, not on the conformed clip,
so its result is close to, not bit-identical with, the unfused one. If no instance can run the
fused prompt, or it fails in the interpolation's part, the i2v runs alone and the interpolate
node runs (and fails, if it must) by itself.

**Inside ComfyUI** (the node pack) there is no pool: the run's ``comfy`` is :class:`InsideComfyUI`.
The node's implementation runs as usual up to the job, then raises :class:`Deferred` with the job
and the :class:`Contract` that turns its result into the node's outputs; the pack expands the node
into the job's stock nodes and applies the contract when they are done (``comfy_pack/expansion.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from ..nodes.builtin.ffmpeg_tools import run_ffmpeg
from ..nodes.pipeline.check import frame_rate, frame_total, probe, video_stream
from ..nodes.pipeline.encoding import INTERMEDIATE, check_fps, frame_count
from ..nodes.providers.http import secret
from ..nodes.types import DownstreamUse, NodeContext, NodeFailure
from .client import ProgressEvent
from .compiler import (
    COMFY_ORG_KEY_ENV,
    KLING_FPS,
    KLING_SECONDS,
    STILL_MODELS,
    VIDEO_MODELS,
    Interpolation,
    KlingParams,
    StillParams,
    VideoOutput,
    VideoParams,
    compile_interpolation,
    compile_kling_interpolated,
    compile_kling_i2v,
    compile_still,
    compile_video,
    compile_video_interpolated,
    fit_area,
    frames_for,
    kling_seconds,
)
from .errors import CompileError, ExecutionFailed, PromptRejected
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


class InsideComfyUI:
    """The ``comfy`` of a node executing inside ComfyUI: jobs become node expansions (``Deferred``)."""


class Deferred(Exception):
    """Raised by a node implementation inside ComfyUI at the point where it would run ``job``: the
    pack expands the node into the job's workflow and applies ``contract`` to its result."""

    def __init__(self, job: ComfyJob, contract: Contract) -> None:
        super().__init__(job.recipe_node)
        self.job, self.contract = job, contract


def require_pool(ctx: NodeContext, what: str) -> ComfyPool | InsideComfyUI:
    if ctx.comfy is None:
        raise NodeFailure(f"{what} needs a ComfyUI instance: start one with `reelgraph comfy up` or pass `--comfy URL`")
    return ctx.comfy


@dataclass(frozen=True)
class Contract:
    """How a ComfyUI result becomes the node's outputs, whatever made it: the output ``port``
    (``video`` or ``image``), exactly ``frames`` at ``fps`` and ``width`` x ``height`` (0: the
    source's size), stretched to fill the slot or not, plus what the node adds to its placement.
    JSON-able: inside ComfyUI it travels in the expanded graph to the node that applies it."""

    port: str
    name: str
    frames: int = 1
    fps: int = 0
    width: int = 0
    height: int = 0
    stretch: bool = False
    placement: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Contract:
        return cls(**json.loads(text))

    def apply(self, ctx: NodeContext, source: Path, provenance: Mapping[str, Any]) -> dict[str, Any]:
        out = ctx.path(self.name)
        if self.port == "image":
            try:
                with Image.open(source) as opened:
                    ImageOps.fit(opened.convert("RGB"), (self.width, self.height),
                                 method=Image.Resampling.LANCZOS).save(out, format="PNG")
            except (UnidentifiedImageError, OSError) as exc:
                where = provenance.get("instance", "ComfyUI")
                raise NodeFailure(f"ComfyUI instance {where} returned an image Pillow cannot read: {exc}") from None
        else:
            size = (self.width, self.height) if self.width and self.height else None
            conform(source, out, self.frames, self.fps, size, stretch=self.stretch)
        return {self.port: out, "placement": {**provenance, **self.placement}}


def run_job(ctx: NodeContext, where: ComfyPool | InsideComfyUI, job: ComfyJob, contract: Contract) -> dict[str, Any]:
    """The node's outputs from ``job`` run on the pool; inside ComfyUI, ``Deferred``."""
    if isinstance(where, InsideComfyUI):
        raise Deferred(job, contract)
    result = _run(ctx, where, job)
    return contract.apply(ctx, result.files[0], result.provenance())


def label(ctx: NodeContext) -> str:
    return ctx.node_id if ctx.element is None else f"{ctx.node_id}[{ctx.element}]"


# ---------------------------------------------------------------------------------------------
# jobs (also what `reelgraph comfy doctor` compiles)


def i2v_job(name: str, model: str, image: Path | None, *, prompt: str, motion: str, seed: int, seconds: float,
            width: int, height: int, api_key: bool = True) -> ComfyJob:
    """``api_key``: send Kling's Comfy.org key from the environment (inside ComfyUI, the API node
    takes the frontend's login instead)."""
    compiled_name = video_model(model)
    hint = CAMERA.get(motion, motion.replace("_", " "))
    uploads = {"image": image} if image is not None else {}
    if compiled_name == "kling":
        extra = {"api_key_comfy_org": secret(COMFY_ORG_KEY_ENV, "video.i2v model 'kling' (a Comfy.org API node)")} if api_key else {}
        clip = min(seconds, KLING_SECONDS[-1])

        def build_kling(target: BuildTarget) -> Any:
            params = KlingParams(prompt, target.inputs["image"], seconds=clip, width=width, height=height, motion=hint)
            return compile_kling_i2v(params, target.info, recipe_node=name, instance=target.instance,
                                     filename_prefix=target.prefix)

        return ComfyJob(name, build_kling, "kling", uploads, heavy=False, extra_data=extra)
    request = _video_request(compiled_name, prompt=prompt, hint=hint, seed=seed, seconds=seconds, width=width,
                             height=height)

    def build(target: BuildTarget) -> Any:
        return compile_video(request(target), target.info, recipe_node=name, instance=target.instance,
                             output=VideoOutput(filename_prefix=target.prefix))

    return ComfyJob(name, build, compiled_name, uploads, heavy=True)


def _video_request(compiled_name: str, *, prompt: str, hint: str, seed: int, seconds: float, width: int,
                   height: int) -> Callable[[BuildTarget], VideoParams]:
    """What video.i2v asks a generative model for, given the target's upload names: the model's
    native size in the slot's aspect, and the slot's length up to the model's longest clip."""
    spec = VIDEO_MODELS[compiled_name]
    gen_width, gen_height = generation_size(compiled_name, width, height)
    clip = min(seconds, (spec.max_frames - 1) / spec.fps)
    return lambda target: VideoParams(compiled_name, prompt, seed=seed, width=gen_width, height=gen_height,
                                      seconds=clip, motion=hint, image=target.inputs["image"])


def i2v_interpolated_job(name: str, interpolation_name: str, model: str, image: Path, *, prompt: str, motion: str,
                         seed: int, seconds: float, width: int, height: int, method: str,
                         multiplier: int) -> ComfyJob:
    """video.i2v and the video.interpolate that consumes it as ONE prompt saving both clips
    (``compile_video_interpolated``; Kling's through ``compile_kling_interpolated``)."""
    compiled_name = video_model(model)
    hint = CAMERA.get(motion, motion.replace("_", " "))
    interpolation = Interpolation(multiplier, method, recipe_node=interpolation_name)  # type: ignore[arg-type]
    if compiled_name == "kling":
        key = secret(COMFY_ORG_KEY_ENV, "video.i2v model 'kling' (a Comfy.org API node)")

        def build_kling(target: BuildTarget) -> Any:
            params = KlingParams(prompt, target.inputs["image"], seconds=min(seconds, KLING_SECONDS[-1]), width=width,
                                 height=height, motion=hint)
            return compile_kling_interpolated(
                params, target.info, recipe_node=name, instance=target.instance, interpolation=interpolation,
                filename_prefix=target.prefix,
                interpolated_output=VideoOutput(filename_prefix=f"{target.prefix}-interpolated"))

        return ComfyJob(name, build_kling, "kling", {"image": image}, heavy=False,
                        extra_data={"api_key_comfy_org": key})
    request = _video_request(compiled_name, prompt=prompt, hint=hint, seed=seed, seconds=seconds, width=width,
                             height=height)

    def build(target: BuildTarget) -> Any:
        return compile_video_interpolated(
            request(target), target.info, recipe_node=name, instance=target.instance, interpolation=interpolation,
            output=VideoOutput(filename_prefix=target.prefix),
            interpolated_output=VideoOutput(filename_prefix=f"{target.prefix}-interpolated"))

    return ComfyJob(name, build, compiled_name, {"image": image}, heavy=True)


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
    where = require_pool(ctx, f"video.i2v model {model!r}")
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
    contract = i2v_contract(model, seconds, fps, width, height)
    use = fusable_interpolation(ctx, compiled_name, fps) if isinstance(where, ComfyPool) else None
    if use is not None and isinstance(where, ComfyPool):
        fused = _run_fused(ctx, where, use, start, contract, model=model, prompt=prompt, motion=motion, seed=seed,
                           seconds=seconds, fps=fps, width=width, height=height)
        if fused is not None:
            return fused
    job = i2v_job(label(ctx), model, start, prompt=prompt, motion=motion, seed=seed, seconds=seconds,
                  width=width, height=height, api_key=isinstance(where, ComfyPool))
    return run_job(ctx, where, job, contract)


def i2v_contract(model: str, seconds: float, fps: int, width: int, height: int) -> Contract:
    """video.i2v's contract from a model's clip: exactly the slot's frames at ``fps`` and size."""
    return Contract("video", "motion.mp4", frame_count(seconds, fps), fps, width, height, stretch=True,
                    placement={"model": model})


# ---------------------------------------------------------------------------------------------
# fusion: video.i2v and the video.interpolate that consumes it, in one prompt


def fusable_interpolation(ctx: NodeContext, compiled_name: str, fps: int) -> DownstreamUse | None:
    """The downstream video.interpolate of this i2v execution that the same prompt can compute:
    it takes the clip as its ``video``, interpolates on ComfyUI, and raises the rate (a lower rate
    is decimated locally, as without fusion). None when there is none."""
    for use in ctx.downstream:
        target = use.inputs.get("fps")
        if not (use.node_type == "video.interpolate" and use.input == "video" and use.output == "video"
                and use.inputs.get("method") in INTERPOLATION_METHODS
                and isinstance(target, int) and not isinstance(target, bool) and target > fps):
            continue
        try:
            check_fps(target)  # a rate the node would refuse is left to the node to refuse
        except NodeFailure:
            continue
        return use
    return None


def fused_multiplier(compiled_name: str, seconds: float, fps: int, target_fps: int) -> int:
    """Frames per generated frame that reach ``target_fps`` once the clip is fitted to the slot:
    the model's clip is interpolated before it is slowed down to fill a longer slot, so the
    slowdown counts too (2..16, as the interpolation nodes allow)."""
    if compiled_name == "kling":
        model_fps = Fraction(KLING_FPS)
        clip = Fraction(kling_seconds(min(seconds, KLING_SECONDS[-1]), compiled_name))
    else:
        spec = VIDEO_MODELS[compiled_name]
        model_fps = Fraction(spec.fps)
        clip = Fraction(frames_for(min(seconds, (spec.max_frames - 1) / spec.fps), spec.fps)) / model_fps
    slot = Fraction(frame_count(seconds, fps), fps)  # what the i2v output lasts
    slowdown = max(Fraction(1), slot / clip)
    return min(16, max(2, math.ceil(target_fps * slowdown / model_fps)))


def _run_fused(ctx: NodeContext, pool: ComfyPool, use: DownstreamUse, start: Path, contract: Contract, *,
               model: str, prompt: str, motion: str, seed: int, seconds: float, fps: int, width: int,
               height: int) -> dict[str, Any] | None:
    """Run the fused prompt; hand the interpolation's result to the engine for ``use`` and return
    the i2v's. None (run the i2v alone) when no instance can run the fused prompt, or when it
    failed in the interpolation's part: then the interpolate node runs, and reports, by itself."""
    compiled_name = video_model(model)
    method, target_fps = str(use.inputs["method"]), int(use.inputs["fps"])
    multiplier = fused_multiplier(compiled_name, seconds, fps, target_fps)
    other = use.node_id if use.element is None else f"{use.node_id}[{use.element}]"
    job = i2v_interpolated_job(label(ctx), other, model, start, prompt=prompt, motion=motion, seed=seed,
                               seconds=seconds, width=width, height=height, method=method, multiplier=multiplier)
    try:
        result = _run(ctx, pool, job)
    except CompileError:
        return None
    except (PromptRejected, ExecutionFailed) as exc:
        if exc.errors and all(error.recipe_node == other for error in exc.errors):
            return None
        raise
    clips = {result.workflow.roles.get(output.comfy_node): path for output, path in zip(result.outputs, result.files)}
    if set(clips) != {"video", "interpolated"}:
        raise NodeFailure(f"ComfyUI instance {result.instance} finished prompt {result.prompt_id} without both "
                          "the generated and the interpolated clip")
    # The interpolation's contract is that of its input, the i2v output: same duration, new rate.
    interpolated = Contract("video", "fused-interpolated.mp4",
                            frame_count(float(Fraction(contract.frames, fps)), target_fps, "video"), target_fps,
                            width, height, stretch=True,
                            placement={"method": method, "multiplier": multiplier, "fused_with": label(ctx)})
    ctx.prefill(use, interpolated.apply(ctx, clips["interpolated"], result.provenance()))
    return contract.apply(ctx, clips["video"], result.provenance())


def run_still(ctx: NodeContext, *, prompt: str, style: str, width: int, height: int, seed: int,
              model: str) -> dict[str, Any]:
    still_model(model)
    where = require_pool(ctx, f"image.generate model {model!r}")
    job = still_job(label(ctx), model, prompt=prompt, style=style, seed=seed, width=width, height=height)
    return run_job(ctx, where, job, Contract("image", "generated.png", 1, 0, width, height,
                                             placement={"model": model}))


def run_interpolation(ctx: NodeContext, *, video: Path, fps: int, method: str) -> dict[str, Any]:
    if method not in INTERPOLATION_METHODS:
        raise NodeFailure(f"input 'method': {method!r} is not one of {', '.join(INTERPOLATION_METHODS)} on ComfyUI")
    where = require_pool(ctx, f"video.interpolate method {method!r}")
    stream = video_stream(probe(video, "video"), "video")
    source = frame_rate(stream)
    if source <= 0:
        raise NodeFailure("input 'video': its frame rate is unknown")
    duration = Fraction(frame_total(video, stream)) / source
    frames = frame_count(float(duration), fps, "video")
    if fps <= source:  # fewer frames: nothing to interpolate
        out = ctx.path("interpolated.mp4")
        conform(video, out, frames, fps)
        return {"video": out, "placement": {"placement": "local", "method": "decimate"}}
    multiplier = min(16, math.ceil(fps / source))
    job = interpolation_job(label(ctx), method, video, source_fps=float(source), multiplier=multiplier)
    contract = Contract("video", "interpolated.mp4", frames, fps, int(stream["width"]), int(stream["height"]),
                        placement={"method": method, "multiplier": multiplier})
    return run_job(ctx, where, job, contract)


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
