"""Encode settings shared by every node that writes video: the one place presets live.

Scene segments are joined by stream copy, so every segment must come out of the encoder
with identical codec parameters (same SPS/PPS, same AAC config). Deriving all of them from
this table is what guarantees that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..types import NodeFailure

PRESETS = ("fast", "balanced", "quality")
CODECS = ("h264", "h265")
# 9:16 sizes by name; 480 wide needs an even height, so 854 (not 853.3).
RESOLUTIONS: dict[str, tuple[int, int]] = {"1080p": (1080, 1920), "720p": (720, 1280), "480p": (480, 854)}

# Encoder speed preset and CRF per (codec, preset). x265 reaches x264's quality at a higher CRF.
_RATE: dict[str, dict[str, tuple[str, int]]] = {
    "h264": {"fast": ("veryfast", 23), "balanced": ("faster", 21), "quality": ("slow", 18)},
    "h265": {"fast": ("veryfast", 27), "balanced": ("faster", 25), "quality": ("slow", 22)},
}

AUDIO_RATE = 48000
# ffmpeg's "fast" AAC coder, left/right stereo: at 192 kb/s (96 per channel) neither the default
# "twoloop" coder nor mid/side coding adds anything audible, and each costs CPU. On a 30 s
# narration + music mix here: 0.4 s of CPU instead of 1.2 s for the default, with 41 dB
# signal-to-noise after decoding against 44 dB.
AUDIO_CODEC: dict[str, Any] = {
    "acodec": "aac", "aac_coder": "fast", "aac_ms": 0, "audio_bitrate": "192k", "ar": AUDIO_RATE, "ac": 2,
}

# Intermediate clips (Ken Burns, interpolation) are re-encoded by their scene's segment, so
# they favour encode speed over size while staying visually lossless.
INTERMEDIATE: dict[str, Any] = {"vcodec": "libx264", "preset": "superfast", "crf": 17, "pix_fmt": "yuv420p"}


# x264 frame threads per segment, fixed rather than x264's automatic 1.5 x cores: segments are
# encoded side by side (one per engine worker), and on 2 cores two encodes of 2 threads each
# finish about 5 % sooner than two of 3, while one segment alone is as fast either way. Fixed,
# a segment's bytes are also the same on every machine (x264's output depends on its threads).
X264_THREADS = 2


@dataclass(frozen=True)
class VideoEncode:
    codec: str
    preset: str
    fps: int

    def args(self, threads: int | None = X264_THREADS) -> dict[str, Any]:
        """ffmpeg-python output keyword arguments for the video stream of a segment (``threads``:
        x264's frame threads, None for its automatic choice, the fastest for one encode alone)."""
        speed, crf = _RATE[self.codec][self.preset]
        keyint = 2 * self.fps  # a keyframe every 2 s; every segment also starts with one (IDR)
        if self.codec == "h264":
            # closed GOPs: no frame refers across a segment boundary, so cuts are clean
            params = f"keyint={keyint}:min-keyint={keyint}:open-gop=0" + (f":threads={threads}" if threads else "")
            return {
                "vcodec": "libx264",
                "preset": speed,
                "crf": crf,
                "pix_fmt": "yuv420p",
                "profile:v": "high",
                "x264-params": params,
            }
        return {
            "vcodec": "libx265",
            "preset": speed,
            "crf": crf,
            "pix_fmt": "yuv420p",
            "profile:v": "main",
            "tag:v": "hvc1",  # what Apple players require for H.265 in MP4
            "x265-params": f"keyint={keyint}:min-keyint={keyint}:open-gop=0:log-level=error",
        }


def video_encode(preset: str, codec: str, fps: int) -> VideoEncode:
    if preset not in PRESETS:
        raise NodeFailure(f"input 'preset': {preset!r} is not one of {', '.join(PRESETS)}")
    if codec not in CODECS:
        raise NodeFailure(f"input 'codec': {codec!r} is not one of {', '.join(CODECS)}")
    return VideoEncode(codec, preset, fps)


def frame_size(width: int, height: int, resolution: str) -> tuple[int, int]:
    """The output size: a named 9:16 resolution when given, else width x height (checked)."""
    if resolution:
        if resolution not in RESOLUTIONS:
            raise NodeFailure(f"input 'resolution': {resolution!r} is not one of {', '.join(RESOLUTIONS)} (or empty)")
        return RESOLUTIONS[resolution]
    return check_size(width, height)


def check_size(width: int, height: int) -> tuple[int, int]:
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise NodeFailure(f"size {width}x{height} is outside 16..8192 pixels")
    if width % 2 or height % 2:
        raise NodeFailure(f"size {width}x{height} must be even in both directions for yuv420p video")
    return width, height


def check_fps(fps: int) -> int:
    if not 1 <= fps <= 240:
        raise NodeFailure(f"input 'fps': {fps} is outside 1..240")
    return fps


def frame_count(seconds: float, fps: int, name: str = "seconds") -> int:
    """Frames in a slot of ``seconds``: round(seconds * fps), at least one."""
    frames = round(seconds * fps)
    if frames < 1:
        raise NodeFailure(f"input {name!r}: {seconds} s at {fps} fps is less than one frame")
    return frames


def audio_samples(frames: int, fps: int) -> int:
    """Audio samples spanning exactly ``frames`` video frames at the shared audio rate."""
    return round(frames * AUDIO_RATE / fps)
