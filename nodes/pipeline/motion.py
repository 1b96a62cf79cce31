"""Local motion: a Ken Burns move over a still (video.i2v) and frame-rate conversion (video.interpolate).

Both also have a ComfyUI placement, chosen by one input (video.i2v ``model``: Wan, Hunyuan or
Kling; video.interpolate ``method``: RIFE or core FrameInterpolate) and run through the run's
ComfyUI pool by ``comfy_workflows.placement``; this module is the local path. Either way the
output keeps the same contract, and ``placement`` (json) says where and with what it was made.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ffmpeg
import PIL

from ...comfy_workflows.keys import fingerprint_for
from ..builtin.ffmpeg_tools import ffmpeg_environment, run_ffmpeg
from ..types import NodeContext, NodeFailure, Port, node_type
from .check import frame_rate, frame_total, probe, video_stream
from .costs import estimate_i2v
from .encoding import INTERMEDIATE, check_fps, check_size, frame_count

if TYPE_CHECKING:  # Pillow is imported where used: every command loads this module
    from PIL import Image

# Default framing per motion: (start zoom, end zoom, start position, end position). A position
# is where the view sits inside the room the zoom leaves, per axis: 0 = left/top, 1 = right/bottom.
_MOTIONS: dict[str, tuple[float, float, tuple[float, float], tuple[float, float]]] = {
    "none": (1.0, 1.0, (0.5, 0.5), (0.5, 0.5)),
    "zoom_in": (1.0, 1.2, (0.5, 0.5), (0.5, 0.5)),
    "zoom_out": (1.2, 1.0, (0.5, 0.5), (0.5, 0.5)),
    # the camera pans left: the view travels from the right edge to the left edge
    "pan_left": (1.15, 1.15, (1.0, 0.5), (0.0, 0.5)),
    "pan_right": (1.15, 1.15, (0.0, 0.5), (1.0, 0.5)),
    "pan_up": (1.15, 1.15, (0.5, 1.0), (0.5, 0.0)),
    "pan_down": (1.15, 1.15, (0.5, 0.0), (0.5, 1.0)),
}

# Progress along the move, e in 0..1, from linear time u in 0..1 (ffmpeg expression syntax).
_EASINGS: dict[str, str] = {
    "linear": "({u})",
    "ease_in": "(1-cos({u}*PI/2))",
    "ease_out": "sin({u}*PI/2)",
    "ease_in_out": "((1-cos({u}*PI))/2)",
}
_MAX_ZOOM = 8.0


def _cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale and centre-crop to exactly width x height, keeping the aspect ratio (cover)."""
    from PIL import Image, ImageOps

    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def _load_image(path: Path) -> Image.Image:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")  # phone photos carry their rotation in EXIF
    except (UnidentifiedImageError, OSError) as exc:
        raise NodeFailure(f"input 'image' is not an image Pillow can read: {exc}") from None


def _num(value: float) -> str:
    return f"{value:.9f}"


def _environment() -> dict[str, Any]:
    # The ComfyUI workflow templates enter the keys of executions that go to ComfyUI only
    # (``fingerprint_for``): editing a fragment never reruns a Ken Burns clip.
    return {**ffmpeg_environment(), "pillow": PIL.__version__}


_PLACEMENT = Port("placement", "json", description="where it ran: local, or the ComfyUI instance, its version, "
                                                   "the workflow template digest and the model files")


def _corner_expressions(
    width: int, height: int, frames: int, zooms: tuple[float, float], starts: tuple[float, float],
    ends: tuple[float, float], easing: str,
) -> dict[str, str]:
    """perspective corners (source coordinates of the output's corners) per frame, as expressions.

    perspective samples with sub-pixel precision (1/256 px), so slow moves glide instead of
    stepping a whole pixel at a time as zoompan's integer crop does; it costs about as much as
    the encode at 1080x1920. ``in`` is the frame number; constants are folded in here.
    """
    step = 1 / (frames - 1) if frames > 1 else 0.0
    progress = _EASINGS[easing].format(u=f"(in*{_num(step)})")
    z0, z1 = zooms
    # zoom changes geometrically, so the apparent speed of the zoom stays constant
    zoom = f"({_num(z0)}*exp({progress}*{_num(math.log(z1 / z0))}))"
    view_w, view_h = f"({width}/{zoom})", f"({height}/{zoom})"
    left = f"(({_num(starts[0])}+{_num(ends[0] - starts[0])}*{progress})*({width}-{view_w}))"
    top = f"(({_num(starts[1])}+{_num(ends[1] - starts[1])}*{progress})*({height}-{view_h}))"
    right, bottom = f"({left}+{view_w})", f"({top}+{view_h})"
    return {"x0": left, "y0": top, "x1": right, "y1": top, "x2": left, "y2": bottom, "x3": right, "y3": bottom}


@node_type(
    "video.i2v",
    category="video",
    impl_version="2",
    placement="both",
    inputs=[
        Port("image", "image"),
        Port("seconds", "number", description="the scene's narration duration; the clip has round(seconds*fps) frames"),
        Port("fps", "integer", optional=True, default=30),
        Port("width", "integer", optional=True, default=1080),
        Port("height", "integer", optional=True, default=1920),
        Port("motion", "string", optional=True, default="zoom_in", description=" | ".join(_MOTIONS)),
        Port("start_zoom", "number", optional=True, default=0.0,
             description="0 takes the motion's default; 1 shows the whole frame"),
        Port("end_zoom", "number", optional=True, default=0.0, description="0 takes the motion's default"),
        Port("easing", "string", optional=True, default="ease_in_out", description=" | ".join(_EASINGS)),
        Port("model", "string", optional=True, default="kenburns",
             description="kenburns (local) | wan2.1 | wan2.2 | wan2.2-5b | hunyuan | kling (ComfyUI)"),
        Port("prompt", "string", optional=True, default="",
             description="generative models: what happens in the scene (the motion is added as a camera hint)"),
        Port("seed", "integer", optional=True, default=0, description="generative models' noise seed"),
    ],
    outputs=[Port("video", "video", description="H.264 yuv420p MP4, no audio, exactly width x height"), _PLACEMENT],
    resources={"ffmpeg": 1},
    environment=_environment,
    fingerprint=fingerprint_for("video.i2v"),  # the ComfyUI and pack versions, when it runs there
    estimate_cost=estimate_i2v,
)
def image_to_video(
    ctx: NodeContext,
    image: Path,
    seconds: float,
    fps: int,
    width: int,
    height: int,
    motion: str,
    start_zoom: float,
    end_zoom: float,
    easing: str,
    model: str = "kenburns",
    prompt: str = "",
    seed: int = 0,
) -> dict[str, Any]:
    """A clip from a still, sized to the narration: a Ken Burns pan/zoom with easing (local), or a
    generative image-to-video model on ComfyUI (Wan, Hunyuan, Kling)."""
    check_size(width, height)
    frames = frame_count(seconds, check_fps(fps))
    if motion not in _MOTIONS:
        raise NodeFailure(f"input 'motion': {motion!r} is not one of {', '.join(_MOTIONS)}")
    if model != "kenburns":
        from ...comfy_workflows.placement import run_i2v

        return run_i2v(ctx, image=image, seconds=seconds, fps=fps, width=width, height=height, motion=motion,
                       prompt=prompt, seed=seed, model=model)
    if easing not in _EASINGS:
        raise NodeFailure(f"input 'easing': {easing!r} is not one of {', '.join(_EASINGS)}")
    default_start, default_end, starts, ends = _MOTIONS[motion]
    zooms = (start_zoom or default_start, end_zoom or default_end)
    for name, zoom in zip(("start_zoom", "end_zoom"), zooms):
        if not 1.0 <= zoom <= _MAX_ZOOM:
            raise NodeFailure(
                f"input {name!r}: {zoom} is outside 1..{_MAX_ZOOM} (1 shows the whole frame, 0 = default)"
            )
    # The still is cover-cropped to the output size once, by Pillow; ffmpeg then only moves a view over it.
    frame = ctx.path("frame.ppm")
    _cover(_load_image(image), width, height).save(frame, format="PPM")
    picture = (
        ffmpeg.input(str(frame))
        .filter("format", pix_fmts="yuv420p")
        .filter("loop", loop=frames - 1, size=1)  # repeat the decoded frame in memory, no re-decoding
        .filter("setpts", expr=f"N/({fps}*TB)")
    )
    moving = zooms[0] != zooms[1] or starts != ends
    if moving or zooms[0] != 1.0:
        corners = _corner_expressions(width, height, frames, zooms, starts, ends, easing)
        picture = picture.filter("perspective", interpolation="linear", eval="frame" if moving else "init", **corners)
    out = ctx.path("motion.mp4")
    run_ffmpeg(
        picture.output(str(out), vframes=frames, r=fps, an=None, movflags="+faststart", **INTERMEDIATE),
        f"render the {motion} move",
    )
    return {"video": out, "placement": {"placement": "local", "model": "kenburns"}}


_INTERPOLATIONS = ("minterpolate", "blend", "duplicate")


@node_type(
    "video.interpolate",
    category="video",
    impl_version="2",
    placement="both",
    inputs=[
        Port("video", "video"),
        Port("fps", "integer", description="target frame rate"),
        Port("method", "string", optional=True, default="blend",
             description=" | ".join(_INTERPOLATIONS) + " (local) | rife | core (ComfyUI)"),
    ],
    outputs=[Port("video", "video", description="same duration, round(duration*fps) frames"), _PLACEMENT],
    resources={"ffmpeg": 1},
    environment=ffmpeg_environment,
    fingerprint=fingerprint_for("video.interpolate"),
)
def interpolate(ctx: NodeContext, video: Path, fps: int, method: str) -> dict[str, Any]:
    """Convert a clip to a new frame rate: motion-compensated, blended or duplicated frames (local),
    or RIFE / core FrameInterpolate on ComfyUI."""
    check_fps(fps)
    if method in ("rife", "core"):
        from ...comfy_workflows.placement import run_interpolation

        return run_interpolation(ctx, video=video, fps=fps, method=method)
    if method not in _INTERPOLATIONS:
        raise NodeFailure(f"input 'method': {method!r} is not one of {', '.join(_INTERPOLATIONS)} (local), "
                          "rife, core (ComfyUI)")
    stream = video_stream(probe(video, "video"), "video")
    source_rate = frame_rate(stream)
    if source_rate <= 0:
        raise NodeFailure("input 'video': its frame rate is unknown")
    # duration from the frame count, not the container, so it is exact for clips made here
    duration = Fraction(frame_total(video, stream)) / source_rate
    frames = frame_count(float(duration), fps, "video")
    picture = ffmpeg.input(str(video)).video.filter("setpts", expr="PTS-STARTPTS")
    if method == "minterpolate":
        picture = picture.filter("minterpolate", fps=fps, mi_mode="mci", mc_mode="aobmc", vsbmc=1)
    elif method == "blend":
        picture = picture.filter("framerate", fps=fps)
    else:
        picture = picture.filter("fps", fps=fps)
    # filters may end a frame short or long of the exact count: hold the last frame, then cut
    picture = (
        picture.filter("tpad", stop_mode="clone", stop=max(2, fps))
        .filter("trim", end_frame=frames)
        .filter("setpts", expr=f"N/({fps}*TB)")
    )
    out = ctx.path("interpolated.mp4")
    run_ffmpeg(
        picture.output(str(out), vframes=frames, r=fps, an=None, movflags="+faststart", **INTERMEDIATE),
        f"interpolate to {fps} fps ({method})",
    )
    return {"video": out, "placement": {"placement": "local", "method": method}}


NODE_TYPES = [image_to_video, interpolate]
