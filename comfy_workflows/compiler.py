"""Compile recipe-level generation requests into ComfyUI API workflows for one instance.

A workflow is assembled from JSON fragments (``fragments/*.json``: API-format nodes keyed by local
names, links between them as ``[name, slot]``) with three kinds of placeholder, each a whole
string value:

* ``"{{param}}"`` — a typed parameter (prompt, seed, width, ...);
* ``"{{file:key}}"`` — a model file; checked against the instance's combo lists;
* ``"{{in:port}}"`` / ``"{{in?:port}}"`` — a link from the previous fragment (``?``: dropped when
  that fragment has no such output).

Every required input the fragments leave out is filled from the instance's ``/object_info``
defaults (never from the server's), and the result is checked before it is returned: classes
present, model files present, and ComfyUI's own validation rules (see ``schema.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import CompileError, MappedError, map_workflow_errors, summary
from .schema import DYNAMIC_TYPES, ObjectInfo, validate_workflow

FRAGMENTS_DIR = Path(__file__).resolve().parent / "fragments"
PLACEHOLDER = re.compile(r"^\{\{(?:(file|in|in\?):)?([A-Za-z0-9_]+)\}\}$")
# Where a missing class comes from, for the refusal message.
CLASS_SOURCES = {
    "RIFE VFI": "custom node pack ComfyUI-Frame-Interpolation",
    "VHS_VideoCombine": "custom node pack ComfyUI-VideoHelperSuite",
    "VHS_LoadVideo": "custom node pack ComfyUI-VideoHelperSuite",
    "FrameInterpolate": "ComfyUI core v0.20 or newer",
    "FrameInterpolationModelLoader": "ComfyUI core v0.20 or newer",
    "KlingImage2VideoNode": "ComfyUI's API nodes (started without --disable-api-nodes)",
}


@dataclass(frozen=True)
class Fragment:
    name: str
    nodes: Mapping[str, Any]
    outputs: Mapping[str, list[Any]]
    digest: str


@functools.cache
def load_fragment(name: str) -> Fragment:
    text = (FRAGMENTS_DIR / f"{name}.json").read_text(encoding="utf-8")
    document = json.loads(text)
    return Fragment(name, document["nodes"], document.get("outputs", {}), hashlib.sha256(text.encode()).hexdigest())


def fragment_names() -> list[str]:
    return sorted(path.stem for path in FRAGMENTS_DIR.glob("*.json"))


@functools.cache
def templates_fingerprint() -> str:
    """Digest of every fragment and of the model tables: what a compiled workflow is made from,
    whatever the instance. It enters the cache key of node types with a ComfyUI placement."""
    tables = {name: [m.fragment, m.image_fragment, dict(m.files)] for name, m in VIDEO_MODELS.items()}
    tables |= {name: [m.fragment, dict(m.files)] for name, m in STILL_MODELS.items()}
    parts = [load_fragment(name).digest for name in fragment_names()]
    parts.append(json.dumps([tables, KLING_MODEL, Interpolation().rife_checkpoint, Interpolation().core_model],
                            sort_keys=True))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Model families


@dataclass(frozen=True)
class VideoModel:
    """One video model as the official templates run it."""

    name: str
    fragment: str  # with a start image: ``image_fragment`` when set, else the same fragment
    files: Mapping[str, str]
    size_step: int
    width: int
    height: int
    fps: float
    max_frames: int
    steps: int
    cfg: float
    shift: float
    sampler: str = "uni_pc"
    scheduler: str = "simple"
    image: Literal["required", "optional", "none"] = "none"
    image_fragment: str | None = None
    negative: str = ""  # used when the request gives none
    extra: Mapping[str, Any] = field(default_factory=dict)  # fixed fragment parameters
    # (fragment node, input) of a noise-augmentation input, for models whose nodes have one.
    noise_aug: tuple[str, str] | None = None


_WAN_TE = {"text_encoder": "umt5_xxl_fp8_e4m3fn_scaled.safetensors"}
# The negative prompt every official Wan template uses.
WAN_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
                "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
                "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")
VIDEO_MODELS: dict[str, VideoModel] = {
    m.name: m
    for m in (
        VideoModel("wan2.1-t2v-1.3b", "wan21_t2v", {**_WAN_TE, "unet": "wan2.1_t2v_1.3B_fp16.safetensors",
                   "vae": "wan_2.1_vae.safetensors"}, 16, 832, 480, 16, 81, 30, 6.0, 8.0, negative=WAN_NEGATIVE),
        VideoModel("wan2.1-t2v-14b", "wan21_t2v", {**_WAN_TE, "unet": "wan2.1_t2v_14B_fp8_scaled.safetensors",
                   "vae": "wan_2.1_vae.safetensors"}, 16, 832, 480, 16, 81, 30, 6.0, 8.0, negative=WAN_NEGATIVE),
        VideoModel("wan2.1-i2v-480p", "wan21_i2v", {**_WAN_TE, "unet": "wan2.1_i2v_480p_14B_fp16.safetensors",
                   "vae": "wan_2.1_vae.safetensors", "clip_vision": "clip_vision_h.safetensors"},
                   16, 832, 480, 16, 81, 20, 6.0, 8.0, image="required", negative=WAN_NEGATIVE),
        VideoModel("wan2.1-i2v-720p", "wan21_i2v", {**_WAN_TE, "unet": "wan2.1_i2v_720p_14B_fp16.safetensors",
                   "vae": "wan_2.1_vae.safetensors", "clip_vision": "clip_vision_h.safetensors"},
                   16, 1280, 720, 16, 81, 20, 6.0, 8.0, image="required", negative=WAN_NEGATIVE),
        VideoModel("wan2.2-14b-t2v", "wan22_14b_t2v", {**_WAN_TE, "vae": "wan_2.1_vae.safetensors",
                   "unet_high": "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                   "unet_low": "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"},
                   16, 832, 480, 16, 81, 20, 3.5, 5.0, sampler="euler", negative=WAN_NEGATIVE),
        VideoModel("wan2.2-14b-i2v", "wan22_14b_i2v", {**_WAN_TE, "vae": "wan_2.1_vae.safetensors",
                   "unet_high": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                   "unet_low": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"},
                   16, 832, 480, 16, 81, 20, 3.5, 5.0, sampler="euler", image="required",
                   negative=WAN_NEGATIVE),
        VideoModel("wan2.2-14b-t2v-4step", "wan22_14b_t2v_4step", {**_WAN_TE, "vae": "wan_2.1_vae.safetensors",
                   "unet_high": "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                   "unet_low": "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
                   "lora_high": "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
                   "lora_low": "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"},
                   16, 832, 480, 16, 81, 4, 1.0, 5.0, sampler="euler", negative=WAN_NEGATIVE),
        VideoModel("wan2.2-14b-i2v-4step", "wan22_14b_i2v_4step", {**_WAN_TE, "vae": "wan_2.1_vae.safetensors",
                   "unet_high": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                   "unet_low": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
                   "lora_high": "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
                   "lora_low": "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"},
                   16, 832, 480, 16, 81, 4, 1.0, 5.0, sampler="euler", image="required", negative=WAN_NEGATIVE),
        VideoModel("wan2.2-5b", "wan22_5b_t2v", {**_WAN_TE, "unet": "wan2.2_ti2v_5B_fp16.safetensors",
                   "vae": "wan2.2_vae.safetensors"}, 32, 1280, 704, 24, 121, 20, 5.0, 8.0,
                   image="optional", image_fragment="wan22_5b_i2v", negative=WAN_NEGATIVE),
        VideoModel("hunyuan-t2v", "hunyuan_t2v", {"unet": "hunyuan_video_t2v_720p_bf16.safetensors",
                   "clip_l": "clip_l.safetensors", "llm": "llava_llama3_fp8_scaled.safetensors",
                   "vae": "hunyuan_video_vae_bf16.safetensors"}, 16, 848, 480, 24, 129, 20, 6.0, 7.0, sampler="euler"),
        VideoModel("hunyuan-i2v", "hunyuan_i2v", {"unet": "hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors",
                   "clip_l": "clip_l.safetensors", "llm": "llava_llama3_fp8_scaled.safetensors",
                   "vae": "hunyuan_video_vae_bf16.safetensors", "clip_vision": "llava_llama3_vision.safetensors"},
                   16, 720, 720, 24, 129, 20, 6.0, 7.0, sampler="euler", image="required",
                   extra={"guidance_type": "v2 (replace)", "image_interleave": 4}),
    )
}


@dataclass(frozen=True)
class StillModel:
    name: str
    fragment: str
    files: Mapping[str, str]
    size_step: int
    width: int
    height: int
    steps: int
    cfg: float
    sampler: str
    scheduler: str
    extra: Mapping[str, Any] = field(default_factory=dict)


STILL_MODELS: dict[str, StillModel] = {
    m.name: m
    for m in (
        StillModel("sdxl", "sdxl_still", {"checkpoint": "sd_xl_base_1.0.safetensors"}, 8, 1024, 1024, 25, 7.0,
                   "dpmpp_2m", "karras"),
        StillModel("flux-dev", "flux_still", {"checkpoint": "flux1-dev-fp8.safetensors"}, 16, 1024, 1024, 20, 1.0,
                   "euler", "simple", {"guidance": 3.5}),
        StillModel("flux-schnell", "flux_still", {"checkpoint": "flux1-schnell-fp8.safetensors"}, 16, 1024, 1024, 4, 1.0,
                   "euler", "simple", {"guidance": 3.5}),
    )
}


# ---------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class VideoParams:
    """A video generation request. ``None`` means the model's own default. ``seconds`` is the
    length of the narration slot; the clip gets the smallest 4k+1 frame count covering it."""

    model: str
    prompt: str
    negative: str | None = None  # None: the model's usual negative prompt
    seed: int = 0
    steps: int | None = None
    cfg: float | None = None
    shift: float | None = None
    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    fps: float | None = None
    motion: str = ""  # motion / camera hint, folded into the prompt
    noise_aug: float = 0.0
    image: str | None = None  # uploaded start image, as ComfyUI names it ("jobs/<run>/start.png")
    files: Mapping[str, str] = field(default_factory=dict)  # model file overrides by role


@dataclass(frozen=True)
class StillParams:
    model: str
    prompt: str
    negative: str = ""
    seed: int = 0
    steps: int | None = None
    cfg: float | None = None
    width: int | None = None
    height: int | None = None
    files: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Interpolation:
    """Frame interpolation after generation: ``core`` (FrameInterpolate) where the instance has it,
    else ``rife`` (RIFE VFI pack); ``auto`` picks in that order."""

    multiplier: int = 2
    method: Literal["auto", "core", "rife"] = "auto"
    rife_checkpoint: str = "rife47.pth"
    core_model: str = "film_net_fp16.safetensors"
    recipe_node: str | None = None  # when a separate recipe node asked for it


@dataclass(frozen=True)
class VideoOutput:
    """Where frames end up: core CreateVideo+SaveVideo, or VHS_VideoCombine; ``auto`` prefers core."""

    node: Literal["auto", "savevideo", "vhs"] = "auto"
    filename_prefix: str = "reelgraph/clip"
    vhs_format: str = "video/h264-mp4"


@dataclass
class CompiledWorkflow:
    """An API-format prompt plus what is needed to run it and to explain its errors."""

    prompt: dict[str, dict[str, Any]]
    node_map: dict[str, str]  # ComfyUI node id -> recipe node id
    output_nodes: list[str]
    model_files: list[str]  # for dispatch (group by loaded model) and the cache-key environment
    fragments: list[str]
    template_digest: str
    frames: int = 0  # 0 when it depends on an input file (interpolating an uploaded video)
    fps: float = 0.0
    width: int = 0
    height: int = 0
    # Output node id -> what it saves, where one prompt saves several things (a fused prompt:
    # "video" the generated clip, "interpolated" the same clip after frame interpolation).
    roles: dict[str, str] = field(default_factory=dict)
    # What the prompt's extra_data must carry for this workflow (the Comfy.org key of API nodes):
    # secrets, so never logged, stored or part of a key.
    extra_data: dict[str, Any] = field(default_factory=dict, repr=False)

    def environment(self) -> dict[str, Any]:
        """What, besides the recipe inputs, decides the output: for the engine's cache key."""
        return {"comfy_template": self.template_digest, "comfy_model_files": list(self.model_files)}


# ---------------------------------------------------------------------------------------------
# Shape arithmetic


def snap(value: int, step: int) -> int:
    """Nearest multiple of ``step`` (halves round up), at least one step."""
    return max(step, int(math.floor(value / step + 0.5)) * step)


def frames_for(seconds: float, fps: float) -> int:
    """Smallest 4k+1 frame count whose duration covers ``seconds`` at ``fps`` (at least 5)."""
    needed = max(1, math.ceil(seconds * fps - 1e-9))
    return max(5, 4 * math.ceil((needed - 1) / 4) + 1)


def fit_area(width: int, height: int, area_width: int, area_height: int, step: int) -> tuple[int, int]:
    """A generation size with the aspect of ``width`` x ``height`` and about the pixel count of
    the model's native ``area_width`` x ``area_height``, snapped to ``step``."""
    scale = math.sqrt(area_width * area_height / (width * height))
    return snap(round(width * scale), step), snap(round(height * scale), step)


def fold_motion(prompt: str, motion: str) -> str:
    motion = motion.strip()
    if not motion:
        return prompt
    return f"{prompt.strip().rstrip('.')}. {motion[0].upper()}{motion[1:]}".strip()


# ---------------------------------------------------------------------------------------------
# Assembly


class _Builder:
    def __init__(self, info: ObjectInfo, instance: str) -> None:
        self.info = info
        self.instance = instance
        self.prompt: dict[str, dict[str, Any]] = {}
        self.node_map: dict[str, str] = {}
        self.file_uses: list[tuple[str, str, str]] = []  # (comfy node, input, file)
        self.fragments: list[Fragment] = []

    def add(self, name: str, recipe_node: str, values: Mapping[str, Any], files: Mapping[str, str],
            inputs: Mapping[str, list[Any]] | None = None) -> dict[str, list[Any]]:
        fragment = load_fragment(name)
        self.fragments.append(fragment)
        ids = {local: str(len(self.prompt) + i + 1) for i, local in enumerate(fragment.nodes)}
        for local, node in fragment.nodes.items():
            node_id = ids[local]
            filled: dict[str, Any] = {}
            for input_name, value in node["inputs"].items():
                resolved = self._resolve(name, value, ids, values, files, inputs or {})
                if resolved is _DROP:
                    continue
                if isinstance(value, str) and value.startswith("{{file:"):
                    self.file_uses.append((node_id, input_name, resolved))
                filled[input_name] = resolved
            title = (node.get("_meta") or {}).get("title", local)
            self.prompt[node_id] = {"class_type": node["class_type"], "inputs": filled,
                                    "_meta": {"title": f"{recipe_node}: {title}"}}
            self.node_map[node_id] = recipe_node
        return {port: [ids[link[0]], link[1]] for port, link in fragment.outputs.items()}

    @staticmethod
    def _resolve(fragment: str, value: Any, ids: Mapping[str, str], values: Mapping[str, Any],
                 files: Mapping[str, str], inputs: Mapping[str, list[Any]]) -> Any:
        if isinstance(value, list) and len(value) == 2 and value[0] in ids:
            return [ids[value[0]], value[1]]
        match = PLACEHOLDER.match(value) if isinstance(value, str) else None
        if match is None:
            return value
        kind, key = match.groups()
        source: Mapping[str, Any] = {"file": files, "in": inputs, "in?": inputs}.get(kind or "", values)
        if key not in source:
            if kind == "in?":
                return _DROP
            raise KeyError(f"fragment {fragment}: no value for placeholder {value}")  # a fragment bug
        return source[key]

    def fill_defaults(self) -> None:
        """Every required widget input the fragments did not set gets the instance's default."""
        for node in self.prompt.values():
            schema = self.info.get(node["class_type"])
            if schema is None:
                continue
            inputs = node["inputs"]
            for name, spec in schema.inputs.items():
                if spec.is_combo and name in inputs:
                    for sub in spec.sub_inputs(inputs[name]):  # VHS format options (pix_fmt, crf, ...)
                        inputs.setdefault(sub.name, sub.default())
                if not spec.required or name in inputs or not spec.is_widget:
                    continue
                if spec.type in DYNAMIC_TYPES:
                    continue
                inputs[name] = spec.default()
                for sub in spec.sub_inputs(inputs[name]):
                    inputs.setdefault(sub.name, sub.default())

    def check(self) -> None:
        problems: list[MappedError] = []
        for node_id, node in self.prompt.items():
            cls = node["class_type"]
            if cls not in self.info:
                source = CLASS_SOURCES.get(cls)
                hint = f" (needs {source})" if source else ""
                problems.append(MappedError(self.node_map[node_id], node_id, cls,
                                            f"node class {cls} is not on instance {self.instance}{hint}"))
        if not problems:
            for node_id, input_name, filename in self.file_uses:
                cls = self.prompt[node_id]["class_type"]
                if filename not in self.info.combo(cls, input_name):
                    problems.append(MappedError(self.node_map[node_id], node_id, cls,
                                                f"model file {filename} is not on instance {self.instance} "
                                                f"(input {input_name})"))
        if not problems:
            problems = map_workflow_errors(
                validate_workflow(self.prompt, self.info, instance=self.instance, check_steps=True), self.node_map
            )
        if problems:
            raise CompileError(summary(problems), problems)

    def finish(self) -> CompiledWorkflow:
        self.fill_defaults()
        self.check()
        digest = hashlib.sha256("".join(f.digest for f in self.fragments).encode()).hexdigest()
        outputs = [i for i, n in self.prompt.items() if self.info[n["class_type"]].output_node]
        return CompiledWorkflow(
            prompt=self.prompt,
            node_map=self.node_map,
            output_nodes=outputs,
            model_files=sorted({f for _, _, f in self.file_uses}),
            fragments=[f.name for f in self.fragments],
            template_digest=digest,
        )


_DROP = object()


def _refuse(recipe_node: str, message: str) -> CompileError:
    error = MappedError(recipe_node, None, None, message)
    return CompileError(str(error), [error])


def _interpolate(builder: _Builder, info: ObjectInfo, frames: list[Any], interp: Interpolation,
                 recipe_node: str) -> list[Any]:
    if interp.multiplier < 2:
        return frames
    owner = interp.recipe_node or recipe_node
    core_ready = (
        "FrameInterpolate" in info and interp.core_model in info.combo("FrameInterpolationModelLoader", "model_name")
    )
    use_core = interp.method == "core" or (interp.method == "auto" and (core_ready or "RIFE VFI" not in info))
    if use_core:
        ports = builder.add("frame_interpolate", owner, {"multiplier": interp.multiplier},
                            {"interp_model": interp.core_model}, {"frames": frames})
    else:
        ports = builder.add("rife_vfi", owner, {"multiplier": interp.multiplier},
                            {"rife": interp.rife_checkpoint}, {"frames": frames})
    return ports["frames"]


def _output(builder: _Builder, info: ObjectInfo, ports: Mapping[str, list[Any]], fps: float, out: VideoOutput,
            recipe_node: str) -> list[str]:
    """The output nodes' fragment; returns the ids of the nodes it added."""
    core = "CreateVideo" in info and "SaveVideo" in info
    use_vhs = out.node == "vhs" or (out.node == "auto" and not core and "VHS_VideoCombine" in info)
    values = {"fps": fps, "filename_prefix": out.filename_prefix, "format": out.vhs_format}
    before = set(builder.prompt)
    builder.add("vhs_video_combine" if use_vhs else "save_video", recipe_node, values, {}, ports)
    return [node_id for node_id in builder.prompt if node_id not in before]


@dataclass(frozen=True)
class _Generated:
    frames: list[Any]  # the port of the decoded frames
    fps: float
    length: int
    width: int
    height: int


def _generate(builder: _Builder, params: VideoParams, recipe_node: str) -> _Generated:
    """The generation fragment of a video request, checked against the model's limits."""
    model = VIDEO_MODELS.get(params.model)
    if model is None:
        raise _refuse(recipe_node, f"unknown video model {params.model!r}; known: {', '.join(VIDEO_MODELS)}")
    if model.image == "required" and not params.image:
        raise _refuse(recipe_node, f"video model {model.name} needs a start image")
    if model.image == "none" and params.image:
        raise _refuse(recipe_node, f"video model {model.name} is text-to-video only and takes no start image")
    if params.noise_aug and model.noise_aug is None:
        raise _refuse(recipe_node, f"video model {model.name} has no noise augmentation input; set noise_aug to 0")
    fps = float(params.fps or model.fps)
    length = frames_for(params.seconds, fps) if params.seconds else model.max_frames
    if length > model.max_frames:
        raise _refuse(recipe_node, f"{params.seconds:g} s at {fps:g} fps needs {length} frames; {model.name} makes "
                                   f"at most {model.max_frames} ({(model.max_frames - 1) / fps:.1f} s)")
    steps = params.steps or model.steps
    values: dict[str, Any] = {
        "prompt": fold_motion(params.prompt, params.motion),
        "negative": model.negative if params.negative is None else params.negative,
        "seed": params.seed,
        "steps": steps,
        "split_step": max(1, steps // 2),
        "cfg": model.cfg if params.cfg is None else params.cfg,
        "shift": model.shift if params.shift is None else params.shift,
        "sampler": model.sampler,
        "scheduler": model.scheduler,
        "width": snap(params.width or model.width, model.size_step),
        "height": snap(params.height or model.height, model.size_step),
        "length": length,
        "image": params.image,
        **model.extra,
    }
    fragment = model.image_fragment if params.image and model.image_fragment else model.fragment
    ports = builder.add(fragment, recipe_node, values, {**model.files, **params.files})
    return _Generated(ports["frames"], fps, length, values["width"], values["height"])


def compile_video(
    params: VideoParams,
    info: ObjectInfo,
    *,
    recipe_node: str,
    instance: str,
    interpolation: Interpolation | None = None,
    output: VideoOutput = VideoOutput(),
) -> CompiledWorkflow:
    """A text/image-to-video workflow (optionally interpolated) for one instance, checked."""
    builder = _Builder(info, instance)
    generated = _generate(builder, params, recipe_node)
    frames = _interpolate(builder, info, generated.frames, interpolation or Interpolation(multiplier=1), recipe_node)
    multiplier = interpolation.multiplier if interpolation and interpolation.multiplier > 1 else 1
    _output(builder, info, {"frames": frames}, generated.fps * multiplier, output, recipe_node)
    compiled = builder.finish()
    compiled.frames = (generated.length - 1) * multiplier + 1
    compiled.fps = generated.fps * multiplier
    compiled.width, compiled.height = generated.width, generated.height
    return compiled


def compile_video_interpolated(
    params: VideoParams,
    info: ObjectInfo,
    *,
    recipe_node: str,
    instance: str,
    interpolation: Interpolation,
    output: VideoOutput = VideoOutput(),
    interpolated_output: VideoOutput = VideoOutput(filename_prefix="reelgraph/interpolated"),
) -> CompiledWorkflow:
    """One prompt for a generation followed by frame interpolation (``interpolation.recipe_node``
    names the recipe node that asked for it) that saves BOTH clips: the generated one (role
    ``video``, at the model's rate) and the interpolated one (role ``interpolated``, at
    ``multiplier`` times it). Each output stays a cache entry of its own recipe node; between them
    no download and upload, and no second model load."""
    if interpolation.multiplier < 2:
        raise _refuse(recipe_node, "a fused interpolation needs a multiplier of at least 2")
    builder = _Builder(info, instance)
    generated = _generate(builder, params, recipe_node)
    roles = dict.fromkeys(_output(builder, info, {"frames": generated.frames}, generated.fps, output, recipe_node),
                          "video")
    frames = _interpolate(builder, info, generated.frames, interpolation, recipe_node)
    owner = interpolation.recipe_node or recipe_node
    roles |= dict.fromkeys(_output(builder, info, {"frames": frames}, generated.fps * interpolation.multiplier,
                                   interpolated_output, owner), "interpolated")
    compiled = builder.finish()
    compiled.roles = {node_id: role for node_id, role in roles.items() if node_id in compiled.output_nodes}
    compiled.frames, compiled.fps = generated.length, generated.fps
    compiled.width, compiled.height = generated.width, generated.height
    return compiled


def compile_still(params: StillParams, info: ObjectInfo, *, recipe_node: str, instance: str,
                  filename_prefix: str = "reelgraph/still") -> CompiledWorkflow:
    """A text-to-image workflow (SDXL or Flux) ending in SaveImage."""
    model = STILL_MODELS.get(params.model)
    if model is None:
        raise _refuse(recipe_node, f"unknown image model {params.model!r}; known: {', '.join(STILL_MODELS)}")
    values = {
        "prompt": params.prompt,
        "negative": params.negative,
        "seed": params.seed,
        "steps": params.steps or model.steps,
        "cfg": model.cfg if params.cfg is None else params.cfg,
        "sampler": model.sampler,
        "scheduler": model.scheduler,
        "width": snap(params.width or model.width, model.size_step),
        "height": snap(params.height or model.height, model.size_step),
        "filename_prefix": filename_prefix,
        **model.extra,
    }
    builder = _Builder(info, instance)
    ports = builder.add(model.fragment, recipe_node, values, {**model.files, **params.files})
    builder.add("save_image", recipe_node, values, {}, ports)
    compiled = builder.finish()
    compiled.frames, compiled.width, compiled.height = 1, values["width"], values["height"]
    return compiled


COMFY_ORG_KEY_ENV = "COMFY_ORG_API_KEY"  # the Comfy.org key that ComfyUI's API nodes (Kling, ...) need
KLING_MODEL = "kling-v2-1"
KLING_SECONDS = (5, 10)  # the API's clip lengths
KLING_FPS = 24.0


@dataclass(frozen=True)
class KlingParams:
    """Kling image-to-video through ComfyUI's API node: the clip is 5 or 10 s (the shortest that
    covers ``seconds``), in the aspect ratio nearest to ``width`` x ``height``."""

    prompt: str
    image: str  # uploaded start image, as ComfyUI names it
    negative: str = ""
    seconds: float = 5.0
    width: int = 1280
    height: int = 720
    motion: str = ""
    cfg: float = 0.8
    mode: Literal["std", "pro"] = "std"
    model: str = KLING_MODEL


def kling_aspect(width: int, height: int) -> str:
    ratios = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}
    return min(ratios, key=lambda name: abs(math.log(ratios[name] * height / width)))


def kling_seconds(seconds: float, recipe_node: str) -> int:
    """The API's clip length that covers ``seconds`` (the shortest)."""
    clip = next((s for s in KLING_SECONDS if seconds <= s + 1e-9), None)
    if clip is None:
        raise _refuse(recipe_node, f"Kling makes clips of at most {KLING_SECONDS[-1]} s; {seconds:g} s asked")
    return clip


def _kling(builder: _Builder, params: KlingParams, recipe_node: str, filename_prefix: str) -> dict[str, list[Any]]:
    """The Kling fragment (its own SaveVideo included); returns its ports (``video``)."""
    values = {
        "image": params.image,
        "prompt": fold_motion(params.prompt, params.motion),
        "negative": params.negative,
        "kling_model": params.model,
        "cfg": params.cfg,
        "mode": params.mode,
        "aspect_ratio": kling_aspect(params.width, params.height),
        "duration": str(kling_seconds(params.seconds, recipe_node)),
        "filename_prefix": filename_prefix,
    }
    return builder.add("kling_i2v", recipe_node, values, {})


def _kling_shape(compiled: CompiledWorkflow, params: KlingParams) -> CompiledWorkflow:
    seconds = kling_seconds(params.seconds, "")
    compiled.frames, compiled.fps = int(seconds * KLING_FPS), KLING_FPS
    compiled.width, compiled.height = {"16:9": (1280, 720), "9:16": (720, 1280)}.get(
        kling_aspect(params.width, params.height), (960, 960))
    return compiled


def compile_kling_i2v(params: KlingParams, info: ObjectInfo, *, recipe_node: str, instance: str,
                      filename_prefix: str = "reelgraph/kling") -> CompiledWorkflow:
    """Image-to-video by Kling (``KlingImage2VideoNode``); send the Comfy.org key in ``extra_data``."""
    builder = _Builder(info, instance)
    _kling(builder, params, recipe_node, filename_prefix)
    return _kling_shape(builder.finish(), params)


def compile_kling_interpolated(params: KlingParams, info: ObjectInfo, *, recipe_node: str, instance: str,
                               interpolation: Interpolation, filename_prefix: str = "reelgraph/kling",
                               interpolated_output: VideoOutput = VideoOutput(filename_prefix="reelgraph/interpolated"),
                               ) -> CompiledWorkflow:
    """Kling's clip and its frame interpolation in one prompt that saves both (roles ``video`` and
    ``interpolated``, as ``compile_video_interpolated``): no download and upload of the clip."""
    if interpolation.multiplier < 2:
        raise _refuse(recipe_node, "a fused interpolation needs a multiplier of at least 2")
    builder = _Builder(info, instance)
    ports = _kling(builder, params, recipe_node, filename_prefix)
    roles = {node_id: "video" for node_id, node in builder.prompt.items() if node["class_type"] == "SaveVideo"}
    owner = interpolation.recipe_node or recipe_node
    frames = builder.add("video_frames", owner, {}, {}, ports)["frames"]
    frames = _interpolate(builder, info, frames, interpolation, recipe_node)
    roles |= dict.fromkeys(_output(builder, info, {"frames": frames}, KLING_FPS * interpolation.multiplier,
                                   interpolated_output, owner), "interpolated")
    compiled = builder.finish()
    compiled.roles = {node_id: role for node_id, role in roles.items() if node_id in compiled.output_nodes}
    return _kling_shape(compiled, params)


def compile_interpolation(video: str, fps: float, info: ObjectInfo, *, recipe_node: str, instance: str,
                          interpolation: Interpolation = Interpolation(),
                          output: VideoOutput = VideoOutput(filename_prefix="reelgraph/interpolated")) -> CompiledWorkflow:
    """Interpolate an uploaded video (audio kept): core LoadVideo where present, else VHS_LoadVideo."""
    builder = _Builder(info, instance)
    loader = "load_video_core" if "LoadVideo" in info and "GetVideoComponents" in info else "load_video_vhs"
    ports = builder.add(loader, recipe_node, {"video": video}, {})
    frames = _interpolate(builder, info, ports["frames"], interpolation, recipe_node)
    _output(builder, info, {"frames": frames, "audio": ports["audio"]}, fps * max(1, interpolation.multiplier),
            output, recipe_node)
    compiled = builder.finish()
    compiled.fps = fps * max(1, interpolation.multiplier)
    return compiled
