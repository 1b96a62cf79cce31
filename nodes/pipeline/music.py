"""Background music (audio.music): a track from a local library, or a generated ambient pad,
fitted to the video's length and set to a known loudness."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ffmpeg

from ..builtin.ffmpeg_tools import ffmpeg_environment, run_ffmpeg
from ..folder_inputs import folder_fingerprint, media_files, open_folder
from ..types import NodeContext, NodeFailure, Port, node_type
from .check import SILENCE_LUFS, audio_loudness, probe, stream_of
from .encoding import AUDIO_RATE

AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac"})
_CROSSFADE = 2.0  # seconds each loop overlaps the next
_FADE_OUT = 2.0
# The offline pad: an A minor add9 voicing; each tone swells at its own slow rate.
_PAD_TONES = ((110.0, 0.1), (220.0, 0.13), (261.63, 0.17), (329.63, 0.21), (493.88, 0.27))  # tremolo needs >= 0.1 Hz


def pick_track(library: str, track: str) -> Path:
    """The track to use: ``track`` by file name or stem, else the first audio file in sorted order."""
    files = media_files(open_folder("library", library), AUDIO_SUFFIXES, recursive=False)
    if not files:
        raise NodeFailure(f"input 'library': {library!r} holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    if not track:
        return files[0]
    for path in files:
        if track in (path.name, path.stem):
            return path
    names = ", ".join(p.name for p in files[:8]) + (" ..." if len(files) > 8 else "")
    raise NodeFailure(f"input 'track': no file named {track!r} in {library!r} (it has {names})")


def library_fingerprint(inputs: Mapping[str, Any]) -> dict[str, str]:
    """The library's audio files enter the key: adding or replacing a track reruns the music."""
    library = inputs["library"]
    return folder_fingerprint("library", library, AUDIO_SUFFIXES, recursive=False) if library else {}


def _stereo(audio: Any) -> Any:
    return audio.filter("aresample", AUDIO_RATE).filter(
        "aformat", sample_fmts="fltp", sample_rates=AUDIO_RATE, channel_layouts="stereo"
    )


def _looped(path: Path, seconds: float) -> Any:
    """The track repeated with crossfades until it covers ``seconds`` (one copy when it already does).

    Overlap-add rather than chained acrossfade: acrossfade reads its first input to the end
    before the second, which stalls when both come from one decoded stream (asplit)."""
    info = probe(path, "track")
    if stream_of(info, "audio") is None:
        raise NodeFailure(f"track {path.name!r} has no audio stream")
    length = float(info.get("format", {}).get("duration") or 0)
    if length <= 0.05:
        raise NodeFailure(f"track {path.name!r} is too short to loop ({length:.3f} s)")
    fade = min(_CROSSFADE, length / 4)
    track = _stereo(ffmpeg.input(str(path)).audio)
    if length >= seconds:
        return track
    copies = math.ceil((seconds - fade) / (length - fade))
    parts = track.filter_multi_output("asplit", copies)  # decode once, use it `copies` times
    layers = []
    for index in range(copies):
        layer = parts[index]
        if index > 0:
            layer = layer.filter("afade", t="in", d=f"{fade:.6f}")
        if index < copies - 1:
            layer = layer.filter("afade", t="out", st=f"{length - fade:.6f}", d=f"{fade:.6f}")
        start = round(index * (length - fade) * AUDIO_RATE)
        layers.append(layer.filter("adelay", delays=f"{start}S", all=1) if start else layer)
    return ffmpeg.filter(layers, "amix", inputs=copies, duration="longest", normalize=0)


def _pad(seconds: float) -> Any:
    """A soft ambient pad from sine tones with slow tremolo, low-passed: deterministic, offline."""
    duration = f"{seconds + 0.1:.6f}"
    tones = [
        ffmpeg.input(f"sine=frequency={freq}:sample_rate={AUDIO_RATE}:duration={duration}", f="lavfi")
        .audio.filter("tremolo", f=rate, d=0.6)
        for freq, rate in _PAD_TONES
    ]
    pad = ffmpeg.filter(tones, "amix", inputs=len(tones), normalize=0).filter("volume", volume=0.15)
    return _stereo(pad.filter("lowpass", f=900).filter("afade", t="in", d=f"{min(1.5, seconds / 4):.6f}"))


@node_type(
    "audio.music",
    category="audio",
    impl_version="1",
    inputs=[
        Port("seconds", "number", description="length wanted"),
        Port("library", "string", optional=True, default="",
             description="a folder of audio files; empty = generated pad"),
        Port("track", "string", optional=True, default="",
             description="file name or stem; empty = first file in sorted order"),
        Port("volume_db", "number", optional=True, default=-18.0,
             description="integrated loudness of the result, in LUFS"),
    ],
    outputs=[Port("audio", "audio", description="WAV, 48 kHz stereo, exactly `seconds` long")],
    resources={"ffmpeg": 1},
    environment=ffmpeg_environment,
    fingerprint=library_fingerprint,
)
def music(ctx: NodeContext, seconds: float, library: str, track: str, volume_db: float) -> dict[str, Any]:
    """Background music: a library track looped with crossfades or cut with a fade-out, or an offline ambient pad."""
    if not 0 < seconds <= 3600:
        raise NodeFailure(f"input 'seconds': {seconds} is outside 0..3600")
    if not -60 <= volume_db <= 0:
        raise NodeFailure(f"input 'volume_db': {volume_db} is outside -60..0 LUFS")
    samples = round(seconds * AUDIO_RATE)
    source = _looped(pick_track(library, track), seconds) if library else _pad(seconds)
    fade = min(_FADE_OUT, seconds / 4)
    fitted = (
        source.filter("asetpts", expr="N/SR/TB")  # amix leaves frames past its first input without timestamps
        .filter("atrim", end_sample=samples)
        .filter("apad", whole_len=samples)
        .filter("afade", t="out", st=f"{seconds - fade:.6f}", d=f"{fade:.6f}")
    )
    raw = ctx.path("fitted.wav")
    run_ffmpeg(fitted.output(str(raw), acodec="pcm_f32le"), "fit the music to length")
    # Set the loudness by a measured, constant gain: a compressor (loudnorm) would flatten the music.
    loudness = audio_loudness(ffmpeg.input(str(raw)).audio, "measure the music loudness")
    gain = volume_db - loudness if loudness > SILENCE_LUFS else 0.0
    out = ctx.path("music.wav")
    run_ffmpeg(
        ffmpeg.input(str(raw)).audio.filter("volume", volume=f"{gain:.3f}dB").output(str(out), acodec="pcm_s16le"),
        "set the music loudness",
    )
    return {"audio": out}


NODE_TYPES = [music]
