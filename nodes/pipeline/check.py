"""Measuring media (ffprobe facts, loudness, black and frozen frames) and the quality gate built on it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from ..builtin.ffmpeg_tools import ffmpeg_environment
from ..types import NodeContext, NodeFailure, Port, node_type

# ebur128 reports this for digital silence (everything is below its absolute gate).
SILENCE_LUFS = -70.0
# ebur128 logs every 100 ms frame at this level (AV_LOG_VERBOSE), below the info level we read,
# so only its summary lands in the log.
_EBUR128_FRAMELOG = 40


def probe(path: Path, name: str) -> dict[str, Any]:
    """ffprobe's format and streams (with codec extradata hashes) for the file behind input ``name``."""
    try:
        return ffmpeg.probe(str(path), show_data_hash="sha256")
    except ffmpeg.Error as exc:
        lines = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        cause = lines[-1] if lines else "no message"
        raise NodeFailure(f"input {name!r} is not a media file ffmpeg can read: {cause}") from None


def stream_of(info: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((s for s in info.get("streams", []) if s.get("codec_type") == kind), None)


def video_stream(info: dict[str, Any], name: str) -> dict[str, Any]:
    stream = stream_of(info, "video")
    if stream is None:
        raise NodeFailure(f"input {name!r} has no video stream")
    return stream


def frame_rate(stream: dict[str, Any]) -> Fraction:
    """The stream's frame rate: the average when known, else the container's nominal rate."""
    for key in ("avg_frame_rate", "r_frame_rate"):
        text = stream.get(key, "0/0")
        num, _, den = text.partition("/")
        if den and int(den) and int(num):
            return Fraction(int(num), int(den))
    return Fraction(0)


def frame_total(path: Path, stream: dict[str, Any]) -> int:
    """Frames in a video stream: the container's count, or counted packets when it has none."""
    if str(stream.get("nb_frames", "")).isdigit():
        return int(stream["nb_frames"])
    info = ffmpeg.probe(str(path), select_streams=f"{stream['index']}", count_packets=None)
    return int(info["streams"][0].get("nb_read_packets", 0))


def stream_seconds(info: dict[str, Any], stream: dict[str, Any]) -> float:
    value = stream.get("duration") or info.get("format", {}).get("duration") or 0
    return float(value)


def ffmpeg_log(stream: Any, what: str) -> str:
    """Run ffmpeg at info level and return its log: analysis filters (ebur128, blackframe...) report there."""
    try:
        _, err = (
            stream.overwrite_output()
            .global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "info")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as exc:
        lines = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise NodeFailure(f"ffmpeg failed to {what}: {' | '.join(lines[-3:]) or 'no message'}") from None
    return err.decode("utf-8", "replace")


_INTEGRATED = re.compile(r"Integrated loudness:\s*I:\s*(-?[\d.]+|-?inf|nan) LUFS", re.S)


def integrated_loudness(log: str) -> float:
    """The integrated loudness (LUFS) from an ebur128 summary in an ffmpeg log.

    The last summary counts: ffmpeg may build a filtergraph once before the real one, and
    that first instance reports an empty measurement when it is torn down."""
    matches = _INTEGRATED.findall(log)
    if not matches:
        return SILENCE_LUFS
    value = float(matches[-1])
    return value if value == value and value > SILENCE_LUFS else SILENCE_LUFS


def audio_loudness(audio: Any, what: str) -> float:
    """Integrated loudness (LUFS) of an ffmpeg-python audio stream, by one decode pass."""
    measured = audio.filter("ebur128", framelog=_EBUR128_FRAMELOG).output("-", f="null")
    return integrated_loudness(ffmpeg_log(measured, what))


_SAMPLE_PEAK = re.compile(r"Sample peak:\s*Peak:\s*(-?[\d.]+|-?inf|nan) dBFS", re.DOTALL)


@dataclass(frozen=True)
class Loudness:
    integrated: float  # LUFS; SILENCE_LUFS for silence
    peak: float  # highest sample, dBFS; -inf for digital silence


def loudness_and_peak(audio: Any, what: str) -> Loudness:
    """Integrated loudness and sample peak of an ffmpeg-python audio stream, by one decode pass."""
    measured = audio.filter("ebur128", framelog=_EBUR128_FRAMELOG, peak="sample").output("-", f="null")
    log = ffmpeg_log(measured, what)
    peaks = _SAMPLE_PEAK.findall(log)  # the last summary counts, as in integrated_loudness
    peak = float(peaks[-1]) if peaks else float("-inf")
    return Loudness(integrated_loudness(log), float("-inf") if math.isnan(peak) else peak)


_FREEZE_START = re.compile(r"freeze_start: ([\d.]+)")
_FREEZE_END = re.compile(r"freeze_end: ([\d.]+)")


def longest_freeze(log: str, video_seconds: float) -> float:
    """Longest frozen stretch reported by freezedetect; one still frozen at the end runs to the end."""
    starts = [float(v) for v in _FREEZE_START.findall(log)]
    ends = [float(v) for v in _FREEZE_END.findall(log)]
    ends += [video_seconds] * (len(starts) - len(ends))
    return max((end - start for start, end in zip(starts, ends)), default=0.0)


def _measure(
    video: Path, fps: int, has_audio: bool, frozen_seconds: float, video_seconds: float
) -> tuple[int, float, float]:
    """One decode pass: black frames, longest freeze and integrated loudness."""
    source = ffmpeg.input(str(video))
    # blackframe counts frames that are >= 98 % near-black pixels (luma below 32), frame by frame
    picture = source.video.filter("blackframe", amount=98, threshold=32)
    if frozen_seconds > 0:
        picture = picture.filter("freezedetect", n="-60dB", d=max(frozen_seconds, 1 / fps))
    outputs = [picture]
    if has_audio:
        outputs.append(source.audio.filter("ebur128", framelog=_EBUR128_FRAMELOG))
    log = ffmpeg_log(ffmpeg.output(*outputs, "-", f="null"), "measure the video")
    black = sum(1 for line in log.splitlines() if "pblack:" in line)
    return black, longest_freeze(log, video_seconds), integrated_loudness(log) if has_audio else SILENCE_LUFS


@node_type(
    "video.check",
    category="video",
    impl_version="1",
    inputs=[
        Port("video", "video"),
        Port("seconds", "number", description="expected duration (the narration slot or the sum of slots)"),
        Port("fps", "integer", optional=True, default=30),
        Port("tolerance", "number", optional=True, default=0.05, description="seconds of allowed difference"),
        Port("min_loudness_lufs", "number", optional=True, default=-35.0),
        Port("max_black_fraction", "number", optional=True, default=0.5),
        Port("max_frozen_seconds", "number", optional=True, default=0.0,
             description="0 turns the frozen-frame check off"),
    ],
    outputs=[Port("video", "video"), Port("report", "json")],
    resources={"ffmpeg": 1},
    environment=ffmpeg_environment,
)
def video_check(
    ctx: NodeContext,
    video: Path,
    seconds: float,
    fps: int,
    tolerance: float,
    min_loudness_lufs: float,
    max_black_fraction: float,
    max_frozen_seconds: float,
) -> dict[str, Any]:
    """Quality gate: duration, frame rate and count, black or frozen frames, A/V drift and loudness.
    Passes the video through with a report of what was measured, or fails naming every problem."""
    if fps < 1:
        raise NodeFailure(f"input 'fps': {fps} must be at least 1")
    if tolerance < 0:
        raise NodeFailure(f"input 'tolerance': {tolerance} must not be negative")
    info = probe(video, "video")
    picture = video_stream(info, "video")
    sound = stream_of(info, "audio")
    frames = frame_total(video, picture)
    rate = frame_rate(picture)
    video_seconds = stream_seconds(info, picture)
    expected_frames = round(seconds * fps)
    black, frozen, loudness = _measure(video, fps, sound is not None, max_frozen_seconds, video_seconds)
    report: dict[str, Any] = {
        "expected": {"seconds": seconds, "fps": fps, "frames": expected_frames},
        "video": {
            "codec": picture.get("codec_name"),
            "width": picture.get("width"),
            "height": picture.get("height"),
            "fps": round(float(rate), 6),
            "frames": frames,
            "seconds": round(video_seconds, 6),
        },
        "audio": None,
        "black_fraction": round(black / frames, 6) if frames else 1.0,
        "longest_freeze_seconds": round(frozen, 6) if max_frozen_seconds > 0 else None,
    }
    problems: list[str] = []
    if abs(float(rate) - fps) > 0.01:
        problems.append(f"frame rate is {float(rate):.3f} fps, expected {fps}")
    if abs(frames / fps - seconds) > tolerance:
        problems.append(
            f"video has {frames} frames ({frames / fps:.3f} s at {fps} fps) but the slot is {seconds:.3f} s"
            f" ({expected_frames} frames), beyond the tolerance of {tolerance} s"
        )
    elif abs(video_seconds - seconds) > tolerance:  # right frame count, wrong timestamps
        problems.append(
            f"video stream lasts {video_seconds:.3f} s but the slot is {seconds:.3f} s (tolerance {tolerance} s)"
        )
    if report["black_fraction"] > max_black_fraction:
        problems.append(
            f"{black} of {frames} frames are black ({report['black_fraction']:.0%}), more than {max_black_fraction:.0%}"
        )
    if max_frozen_seconds > 0 and frozen > max_frozen_seconds:
        problems.append(f"the picture is frozen for {frozen:.2f} s, longer than {max_frozen_seconds} s")
    if sound is None:
        problems.append("the video has no audio stream")
    else:
        audio_seconds = stream_seconds(info, sound)
        drift = audio_seconds - video_seconds
        report["audio"] = {
            "codec": sound.get("codec_name"),
            "sample_rate": int(sound.get("sample_rate", 0)),
            "channels": sound.get("channels"),
            "seconds": round(audio_seconds, 6),
            "drift_seconds": round(drift, 6),
            "loudness_lufs": loudness,
        }
        if abs(drift) > tolerance:
            problems.append(
                f"audio lasts {audio_seconds:.3f} s but video {video_seconds:.3f} s: a drift of {drift:+.3f} s,"
                f" beyond the tolerance of {tolerance} s"
            )
        if loudness < min_loudness_lufs:
            heard = "silent" if loudness <= SILENCE_LUFS else f"{loudness:.1f} LUFS"
            problems.append(f"audio loudness is {heard}, below the minimum of {min_loudness_lufs} LUFS")
    if problems:
        raise NodeFailure("quality check failed: " + "; ".join(problems))
    return {"video": video, "report": report}


NODE_TYPES = [video_check]
