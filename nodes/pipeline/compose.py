"""Assembly: each scene encoded once as its own segment (video.segment), then joined by stream
copy with one audio mix (video.compose).

The encode is the cost floor, so it happens per scene, in parallel and cached: editing one
scene re-encodes only its segment, and the final video is a stream-copy concat plus an audio
mux. Joins are seamless because every segment has an exact frame count, identical codec
parameters (encoding.py) and audio of exactly its video's length; the joined audio is rebuilt
from decoded PCM, so AAC priming and padding never leave gaps or clicks at a cut.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ffmpeg

from ..builtin.ffmpeg_tools import ffmpeg_environment, run_ffmpeg
from ..types import NodeContext, NodeFailure, Port, node_type
from .check import SILENCE_LUFS, audio_loudness, frame_rate, frame_total, probe, stream_of, video_stream
from .encoding import (
    AUDIO_CODEC,
    AUDIO_RATE,
    CODECS,
    PRESETS,
    RESOLUTIONS,
    audio_samples,
    check_fps,
    frame_count,
    frame_size,
    video_encode,
)

# Narration loudness assumed when it is silent, so music still gets a sensible level.
_REFERENCE_LUFS = -16.0


def _pcm(audio: Any, samples: int) -> Any:
    """An audio stream as 48 kHz stereo of exactly ``samples`` samples (trimmed or padded with silence)."""
    return (
        audio.filter("asetpts", expr="PTS-STARTPTS")
        .filter("aresample", AUDIO_RATE)
        .filter("aformat", sample_fmts="fltp", sample_rates=AUDIO_RATE, channel_layouts="stereo")
        .filter("atrim", end_sample=samples)
        .filter("apad", whole_len=samples)
        .filter("asetpts", expr="N/SR/TB")
    )


@node_type(
    "video.segment",
    category="video",
    impl_version="2",
    inputs=[
        Port("video", "video", description="the scene's clip"),
        Port("audio", "audio", description="the scene's narration (any rate and channels)"),
        Port("subtitles", "file", optional=True, description="an .ass file to burn in"),
        Port("seconds", "number", description="the scene slot: round(seconds*fps) frames and the same audio length"),
        Port("width", "integer", optional=True, default=1080),
        Port("height", "integer", optional=True, default=1920),
        Port("fps", "integer", optional=True, default=30),
        Port("preset", "string", optional=True, default="balanced", description=" | ".join(PRESETS)),
        Port("codec", "string", optional=True, default="h264", description=" | ".join(CODECS)),
        Port("resolution", "string", optional=True, default="",
             description="'' or " + " | ".join(RESOLUTIONS) + " (9:16, overrides width/height)"),
    ],
    outputs=[
        Port("video", "video", description="MP4 segment that joins others by stream copy"),
        Port("seconds", "number", description="its exact length (whole frames): sum these for the final video"),
    ],
    resources={"ffmpeg": 1},
    environment=ffmpeg_environment,
)
def segment(
    ctx: NodeContext,
    video: Path,
    audio: Path,
    subtitles: Path | None,
    seconds: float,
    width: int,
    height: int,
    fps: int,
    preset: str,
    codec: str,
    resolution: str,
) -> dict[str, Any]:
    """Encode one scene: its clip normalised to size, fps and exact length, subtitles burned, narration fitted."""
    width, height = frame_size(width, height, resolution)
    frames = frame_count(seconds, check_fps(fps))
    encode = video_encode(preset, codec, fps)
    info = probe(video, "video")
    video_stream(info, "video")
    if stream_of(probe(audio, "audio"), "audio") is None:
        raise NodeFailure("input 'audio' has no audio stream")
    picture = (
        ffmpeg.input(str(video))
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
    sound = _pcm(ffmpeg.input(str(audio)).audio, audio_samples(frames, fps))
    out = ctx.path("segment.mp4")
    stream = ffmpeg.output(
        # no -frames:v: trim already cuts exactly, and a frame limit would cut the audio short
        picture, sound, str(out), r=fps, movflags="+faststart", **encode.args(), **AUDIO_CODEC
    )
    run_ffmpeg(stream, f"encode the segment ({width}x{height}, {frames} frames at {fps} fps)")
    return {"video": out, "seconds": frames / fps}


# Stream facts that must agree for segments to join by stream copy.
_VIDEO_KEYS = ("codec_name", "profile", "level", "width", "height", "pix_fmt", "extradata_hash")
_AUDIO_KEYS = ("codec_name", "sample_rate", "channels", "extradata_hash")


def _segment_facts(index: int, path: Path) -> tuple[dict[str, Any], int, int]:
    """(comparable stream facts, frames, fps) of segment ``index`` (1-based, for messages)."""
    name = f"segments[{index - 1}]"
    info = probe(path, name)
    picture = video_stream(info, name)
    sound = stream_of(info, "audio")
    if sound is None:
        raise NodeFailure(f"input {name!r} has no audio stream; make segments with video.segment")
    rate = frame_rate(picture)
    if rate.denominator != 1:
        raise NodeFailure(f"input {name!r} has a frame rate of {float(rate):.3f}; segments need a whole-number rate")
    facts = {f"video {key}": picture.get(key) for key in _VIDEO_KEYS}
    facts |= {f"audio {key}": sound.get(key) for key in _AUDIO_KEYS}
    facts["fps"] = int(rate)
    facts["video stream id"] = picture.get("id")
    return facts, frame_total(path, picture), int(rate)


def _concat_listing(ctx: NodeContext, segments: list[Path], durations: list[float], stream_id: str) -> Path:
    """An ffconcat script reading only the segments' video, placed back to back by exact length.

    Only the video stream is declared: the demuxer would otherwise start the whole input at
    the audio's AAC priming (-21 ms) and delay the picture by that much against the sound.
    In-points and durations are explicit for the same reason, for every join."""
    lines = ["ffconcat version 1.0", "stream", f"exact_stream_id {stream_id}"]
    for path, duration in zip(segments, durations):
        lines.append("file '{}'".format(str(path).replace("'", "'\\''")))
        lines.append("inpoint 0")
        lines.append(f"duration {duration:.9f}")
    listing = ctx.path("segments.ffconcat")
    listing.write_text("\n".join(lines) + "\n")
    return listing


@node_type(
    "video.compose",
    category="video",
    impl_version="1",
    inputs=[
        Port("segments", "video", is_list=True, description="every scene's segment, in order"),
        Port("music", "audio", optional=True),
        Port("music_db", "number", optional=True, default=-18.0,
             description="music level relative to the narration's loudness, in dB"),
        Port("duck", "boolean", optional=True, default=True, description="lower the music while the narration speaks"),
    ],
    outputs=[Port("video", "video")],
    resources={"ffmpeg": 1},
    environment=ffmpeg_environment,
)
def compose(ctx: NodeContext, segments: list[Path], music: Path | None, music_db: float, duck: bool) -> dict[str, Any]:
    """Join the segments' video by stream copy; mix their narration with ducked music and encode the audio once."""
    if not segments:
        raise NodeFailure("input 'segments' is an empty list; there is nothing to compose")
    facts = [_segment_facts(i, path) for i, path in enumerate(segments, start=1)]
    first = facts[0][0]
    for index, (other, _, _) in enumerate(facts[1:], start=2):
        differ = [f"{key} {other[key]} vs {first[key]}" for key in first if other[key] != first[key]]
        if differ:
            raise NodeFailure(
                f"segment {index} was encoded differently from segment 1 ({', '.join(differ)}); every segment"
                " needs the same size, fps, preset and codec to join without re-encoding"
            )
    fps = facts[0][2]
    counts = [frames for _, frames, _ in facts]
    samples = [audio_samples(frames, fps) for frames in counts]
    total = sum(samples)

    # The narration track: every segment's audio decoded (AAC priming removed by the decoder),
    # cut to its video's exact length and joined sample-accurately.
    narration_wav = ctx.path("narration.wav")
    parts = [_pcm(ffmpeg.input(str(path)).audio, count) for path, count in zip(segments, samples)]
    joined = parts[0] if len(parts) == 1 else ffmpeg.concat(*parts, v=0, a=1)
    run_ffmpeg(joined.output(str(narration_wav), acodec="pcm_s16le"), f"join the narration of {len(segments)} segments")

    listing = _concat_listing(ctx, segments, [frames / fps for frames in counts], str(first["video stream id"]))
    # auto_convert off: packets pass through untouched (it would add in-band SPS/PPS, which
    # identical extradata across segments makes unnecessary)
    picture = ffmpeg.input(str(listing), f="concat", safe=0, auto_convert=0)["v:0"]
    narration = ffmpeg.input(str(narration_wav)).audio
    if music is None:
        sound = narration
    else:
        sound = _mix(narration_wav, narration, music, music_db, duck, total)
    out = ctx.path("video.mp4")
    stream = ffmpeg.output(picture, sound, str(out), vcodec="copy", movflags="+faststart", **AUDIO_CODEC)
    run_ffmpeg(stream, f"mux {len(segments)} segments with the audio mix")
    return {"video": out}


def _mix(narration_wav: Path, narration: Any, music: Path, music_db: float, duck: bool, samples: int) -> Any:
    """Narration plus music looped or cut to length, set ``music_db`` below the narration, ducked under speech."""
    if stream_of(probe(music, "music"), "audio") is None:
        raise NodeFailure("input 'music' has no audio stream")
    speech = audio_loudness(ffmpeg.input(str(narration_wav)).audio, "measure the narration loudness")
    bed = audio_loudness(ffmpeg.input(str(music)).audio, "measure the music loudness")
    if bed <= SILENCE_LUFS:
        raise NodeFailure("input 'music' is silent")
    reference = speech if speech > SILENCE_LUFS else _REFERENCE_LUFS
    gain = reference + music_db - bed
    track = _pcm(ffmpeg.input(str(music), stream_loop=-1).audio, samples).filter("volume", volume=f"{gain:.3f}dB")
    if duck and speech > SILENCE_LUFS:
        split = narration.filter_multi_output("asplit", 2)
        narration, key = split[0], split[1]
        # the compressor listens to the narration: about 10 dB of reduction while someone speaks
        threshold = 10 ** ((speech - 12) / 20)
        track = ffmpeg.filter(
            [track, key], "sidechaincompress", threshold=f"{threshold:.6f}", ratio=8, attack=20, release=400
        )
    return ffmpeg.filter([narration, track], "amix", inputs=2, duration="first", normalize=0)


NODE_TYPES = [segment, compose]
