"""Assembly: each scene encoded once as its own segment (video.segment), then joined by stream
copy with the soundtrack (video.compose).

The encode is the cost floor, so it happens per scene, in parallel and cached: editing one
scene re-encodes only its segment, and the final video is a stream-copy concat of the
segments plus the soundtrack copied in (audio.mix makes it from the narrations alone, so it
runs while the segments encode). Joins are seamless because every segment has an exact frame
count and identical codec parameters (encoding.py), and the soundtrack is one continuous track
of exactly the segments' total length.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from ..builtin.ffmpeg_tools import ffmpeg_environment, run_ffmpeg
from ..types import NodeContext, NodeFailure, Port, node_type
from .check import probe, video_stream
from .encoding import CODECS, PRESETS, RESOLUTIONS, check_fps, frame_count, frame_size, video_encode
from .mp4 import Mp4Error, Track, read_tracks, track_of


@node_type(
    "video.segment",
    category="video",
    impl_version="3",
    inputs=[
        Port("video", "video", description="the scene's clip"),
        Port("subtitles", "file", optional=True, description="an .ass file to burn in"),
        Port("seconds", "number", description="the scene slot: round(seconds*fps) frames"),
        Port("width", "integer", optional=True, default=1080),
        Port("height", "integer", optional=True, default=1920),
        Port("fps", "integer", optional=True, default=30),
        Port("preset", "string", optional=True, default="balanced", description=" | ".join(PRESETS)),
        Port("codec", "string", optional=True, default="h264", description=" | ".join(CODECS)),
        Port("resolution", "string", optional=True, default="",
             description="'' or " + " | ".join(RESOLUTIONS) + " (9:16, overrides width/height)"),
    ],
    outputs=[
        Port("video", "video", description="MP4 segment (video only) that joins others by stream copy"),
        Port("seconds", "number", description="its exact length (whole frames): sum these for the final video"),
    ],
    resources={"ffmpeg": 1},
    environment=ffmpeg_environment,
)
def segment(
    ctx: NodeContext,
    video: Path,
    subtitles: Path | None,
    seconds: float,
    width: int,
    height: int,
    fps: int,
    preset: str,
    codec: str,
    resolution: str,
) -> dict[str, Any]:
    """Encode one scene's picture: its clip normalised to size, fps and exact length, subtitles burned.
    Its narration goes to audio.mix, which builds the whole soundtrack while the segments encode."""
    width, height = frame_size(width, height, resolution)
    frames = frame_count(seconds, check_fps(fps))
    encode = video_encode(preset, codec, fps)
    picture = (
        # one decoding thread: x264's threads keep the cores busy, and segments encode side by side,
        # where frame-threaded decoding only adds switching (same decoded frames either way)
        ffmpeg.input(str(video), threads=1)
        .video.filter("setpts", expr="PTS-STARTPTS")
        .filter("scale", w=width, h=height, force_original_aspect_ratio="increase", flags="bicubic")
        .filter("crop", w=width, h=height)
        .filter("setsar", sar="1")
        .filter("fps", fps=fps)
        # a short clip holds its last frame; a long one is cut: exactly `frames` frames either way
        .filter("tpad", stop_mode="clone", stop=frames)
        .filter("trim", end_frame=frames)
        .filter("setpts", expr=f"N/({fps}*TB)")
    )
    if subtitles is not None:
        # ffmpeg-python escapes keyword values for both filtergraph levels, so any path is safe here
        picture = picture.filter("ass", filename=str(subtitles))
    picture = picture.filter("format", pix_fmts="yuv420p")
    out = ctx.path("segment.mp4")
    stream = ffmpeg.output(picture, str(out), r=fps, movflags="+faststart", **encode.args())
    try:
        run_ffmpeg(stream, f"encode the segment ({width}x{height}, {frames} frames at {fps} fps)")
    except NodeFailure:
        # probed only now: a probe costs a process start on every encode's critical path
        video_stream(probe(video, "video"), "video")  # names the input when it is no video at all
        raise
    return {"video": out, "seconds": frames / fps}


def _segment_facts(index: int, path: Path) -> tuple[dict[str, Any], Track]:
    """(the stream facts that must agree for a stream-copy join, the video track) of ``segments[index]``."""
    name = f"segments[{index}]"
    try:
        picture = track_of(read_tracks(path), "video")
    except Mp4Error as exc:
        raise NodeFailure(f"input {name!r} is not an MP4 file ({exc}); make segments with video.segment") from None
    if picture is None:
        raise NodeFailure(f"input {name!r} has no video track; make segments with video.segment")
    rate = picture.frame_rate
    if rate.denominator != 1:
        raise NodeFailure(f"input {name!r} has a frame rate of {float(rate):.3f}; segments need a whole-number rate")
    facts = {
        "video codec": picture.codec,
        "video width": picture.width,
        "video height": picture.height,
        # the codec configuration record (SPS/PPS: profile, level, pixel format ...), by digest
        "video codec configuration": picture.config_sha256[:12],
        "fps": int(rate),
        "video track id": picture.track_id,  # the concat script selects the video by it
    }
    return facts, picture


def _concat_listing(ctx: NodeContext, segments: list[Path], durations: list[Fraction], track_id: int) -> Path:
    """An ffconcat script reading only the segments' video, placed back to back by exact length.

    Only the video stream is declared, and in-points and durations are explicit for every join:
    a segment that also carries audio would otherwise start the input at its AAC priming."""
    lines = ["ffconcat version 1.0", "stream", f"exact_stream_id {track_id}"]
    for path, duration in zip(segments, durations):
        lines.append("file '{}'".format(str(path).replace("'", "'\\''")))
        lines.append("inpoint 0")
        lines.append(f"duration {float(duration):.9f}")
    listing = ctx.path("segments.ffconcat")
    listing.write_text("\n".join(lines) + "\n")
    return listing


def _check_soundtrack(audio: Path, seconds: Fraction) -> None:
    """The soundtrack is copied as it is, so it must be an MP4 audio track of the video's length."""
    try:
        sound = track_of(read_tracks(audio), "audio")
    except Mp4Error as exc:
        raise NodeFailure(f"input 'audio' is not an MP4/M4A file ({exc}); make the soundtrack with audio.mix") from None
    if sound is None:
        raise NodeFailure("input 'audio' has no audio track; make the soundtrack with audio.mix")
    # MP4 edit lists give the length in milliseconds (ffmpeg's movie timescale)
    if abs(sound.seconds - seconds) > Fraction(1, 1000):
        raise NodeFailure(
            f"input 'audio' lasts {float(sound.seconds):.3f} s but the segments {float(seconds):.3f} s; give"
            " audio.mix the same seconds and fps as video.segment"
        )


@node_type(
    "video.compose",
    category="video",
    impl_version="2",
    inputs=[
        Port("segments", "video", is_list=True, description="every scene's segment, in order"),
        Port("audio", "audio", optional=True,
             description="the soundtrack (audio.mix), as long as the segments together; copied, not re-encoded"),
    ],
    outputs=[Port("video", "video")],
    resources={"ffmpeg": 1},
    environment=ffmpeg_environment,
)
def compose(ctx: NodeContext, segments: list[Path], audio: Path | None) -> dict[str, Any]:
    """Join the segments' video and put the soundtrack beside it, both by stream copy: nothing is encoded."""
    if not segments:
        raise NodeFailure("input 'segments' is an empty list; there is nothing to compose")
    facts = [_segment_facts(i, path) for i, path in enumerate(segments)]
    first = facts[0][0]
    for index, (other, _) in enumerate(facts[1:], start=2):
        differ = [f"{key} {other[key]} vs {first[key]}" for key in first if other[key] != first[key]]
        if differ:
            raise NodeFailure(
                f"segment {index} was encoded differently from segment 1 ({', '.join(differ)}); every segment"
                " needs the same size, fps, preset and codec to join without re-encoding"
            )
    fps = first["fps"]
    durations = [Fraction(track.samples, fps) for _, track in facts]
    listing = _concat_listing(ctx, segments, durations, facts[0][1].track_id)
    # auto_convert off: packets pass through untouched (it would add in-band SPS/PPS, which
    # identical extradata across segments makes unnecessary)
    streams = [ffmpeg.input(str(listing), f="concat", safe=0, auto_convert=0)["v:0"]]
    if audio is not None:
        _check_soundtrack(audio, sum(durations, Fraction(0)))
        streams.append(ffmpeg.input(str(audio))["a:0"])
    out = ctx.path("video.mp4")
    what = f"join {len(segments)} segments" + (" with the soundtrack" if audio is not None else "")
    run_ffmpeg(ffmpeg.output(*streams, str(out), c="copy", movflags="+faststart"), what)
    return {"video": out}


NODE_TYPES = [segment, compose]
