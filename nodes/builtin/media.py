"""Stills and video: a Pillow title card, a still held as a clip, and a stream-copy concat."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import ffmpeg
import PIL

from ..types import NodeContext, NodeFailure, Port, node_type
from .ffmpeg_tools import ffmpeg_environment, run_ffmpeg

if TYPE_CHECKING:  # Pillow is imported where used: every command loads this module
    from PIL import ImageDraw, ImageFont

# x264 settings every clip shares, so clips concatenate by stream copy without re-encoding.
CLIP_CODEC = {"vcodec": "libx264", "pix_fmt": "yuv420p", "preset": "veryfast", "crf": 20}


def _color(name: str, value: str) -> tuple[int, ...]:
    from PIL import ImageColor

    try:
        return ImageColor.getrgb(value)
    except ValueError:
        raise NodeFailure(f"input {name!r}: {value!r} is not a colour (use #rrggbb or a CSS name)") from None


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=font) > max_width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


@node_type(
    "image.title_card",
    category="image",
    impl_version="1",
    inputs=[
        Port("text", "string"),
        Port("width", "integer", optional=True, default=1080),
        Port("height", "integer", optional=True, default=1920),
        Port("background", "string", optional=True, default="#101820"),
        Port("color", "string", optional=True, default="#f2aa4c"),
        Port("font_size", "integer", optional=True, default=0, description="0 picks a size from the width"),
    ],
    outputs=[Port("image", "image")],
    environment=lambda: {"pillow": PIL.__version__},
)
def title_card(
    ctx: NodeContext, text: str, width: int, height: int, background: str, color: str, font_size: int
) -> dict[str, Any]:
    """Render text centred on a solid background as a PNG."""
    from PIL import Image, ImageDraw, ImageFont

    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise NodeFailure(f"size {width}x{height} is outside 16..8192 pixels")
    if width % 2 or height % 2:
        raise NodeFailure(f"size {width}x{height} must be even in both directions for H.264 video")
    size = font_size if font_size > 0 else max(8, width // 14)
    image = Image.new("RGB", (width, height), _color("background", background))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=size)  # Pillow's bundled scalable font: no system fonts needed
    lines = _wrap(draw, text, font, int(width * 0.86))
    line_height = int(size * 1.25)
    top = (height - line_height * len(lines)) // 2
    for index, line in enumerate(lines):
        draw.text((width / 2, top + index * line_height), line, font=font, fill=_color("color", color), anchor="ma")
    out = ctx.path("card.png")
    image.save(out, format="PNG")
    return {"image": out}


@node_type(
    "video.still",
    category="video",
    inputs=[
        Port("image", "image"),
        Port("seconds", "number", optional=True, default=2.0),
        Port("fps", "integer", optional=True, default=30),
    ],
    outputs=[Port("video", "video")],
    resources={"ffmpeg": 1},
    environment=ffmpeg_environment,
)
def video_still(ctx: NodeContext, image: Path, seconds: float, fps: int) -> dict[str, Any]:
    """Hold a still image as an H.264 clip of an exact frame count."""
    if not 1 <= fps <= 240:
        raise NodeFailure(f"input 'fps': {fps} is outside 1..240")
    frames = round(seconds * fps)
    if frames < 1:
        raise NodeFailure(f"input 'seconds': {seconds} s at {fps} fps is less than one frame")
    out = ctx.path("still.mp4")
    stream = ffmpeg.input(str(image), loop=1, framerate=fps).output(
        str(out), vframes=frames, r=fps, movflags="+faststart", **CLIP_CODEC
    )
    run_ffmpeg(stream, "encode the still as a clip")
    return {"video": out}


@node_type(
    "video.concat",
    category="video",
    inputs=[Port("clips", "video", is_list=True, description="clips sharing codec, size and frame rate")],
    outputs=[Port("video", "video")],
    resources={"ffmpeg": 1},
    environment=ffmpeg_environment,
)
def video_concat(ctx: NodeContext, clips: list[Path]) -> dict[str, Any]:
    """Join clips end to end by stream copy (no re-encode)."""
    if not clips:
        raise NodeFailure("input 'clips' is an empty list; there is nothing to join")
    listing = ctx.path("clips.txt")
    listing.write_text("".join("file '{}'\n".format(str(clip).replace("'", "'\\''")) for clip in clips))
    out = ctx.path("joined.mp4")
    stream = ffmpeg.input(str(listing), f="concat", safe=0).output(str(out), c="copy", movflags="+faststart")
    run_ffmpeg(stream, f"join {len(clips)} clips")
    return {"video": out}
