"""The soundtrack (audio.mix): every scene's narration placed in its slot and brought to a target
loudness, the music set below it and ducked while someone speaks, encoded once as AAC.

It needs only the narrations, their slot lengths and the music, never the encoded video, so
the engine runs it alongside the scenes' video encodes (video.segment) and video.compose only
copies both streams into one file. Slots are whole video frames, computed exactly as
video.segment computes them (encoding.frame_count), so every narration starts on its scene's
first frame; the track is built from decoded PCM, so nothing at a cut (AAC priming, padding)
leaves a gap or a click.

Loudness is measured on the joined narration itself (ITU BS.1770 gating over the whole track),
in a decode pass of about a tenth of a second per 30 s of audio that runs while the video encodes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ffmpeg

from ..builtin.ffmpeg_tools import ffmpeg_environment, run_ffmpeg
from ..types import NodeContext, NodeFailure, Port, node_type
from .check import (
    SILENCE_LUFS,
    Loudness,
    audio_loudness,
    loudness_and_peak,
    probe,
    stream_of,
)
from .encoding import AUDIO_CODEC, AUDIO_RATE, audio_samples, check_fps, frame_count

# Narration level assumed when it is silent, so music still gets a sensible level.
_REFERENCE_LUFS = -16.0
# Highest sample level the mix may reach: what the narration's gain aims under, and where the
# limiter holds the peaks that a louder target would push over.
_CEILING_DBFS = -1.0
# The compressor lowers the music while the narration is within this many dB of its loudness.
_DUCK_BELOW_DB = 12.0


def fitted_pcm(audio: Any, samples: int) -> Any:
    """An audio stream as 48 kHz stereo of exactly ``samples`` samples (cut, or padded with silence)."""
    return (
        audio.filter("asetpts", expr="PTS-STARTPTS")
        .filter("aresample", AUDIO_RATE)
        .filter("aformat", sample_fmts="fltp", sample_rates=AUDIO_RATE, channel_layouts="stereo")
        .filter("atrim", end_sample=samples)
        .filter("apad", whole_len=samples)
        .filter("asetpts", expr="N/SR/TB")
    )


def _joined(narration: list[Path], slots: list[int]) -> Any:
    """The narration track: each scene's narration fitted to its slot, back to back, sample-exact."""
    parts = [fitted_pcm(ffmpeg.input(str(path)).audio, count) for path, count in zip(narration, slots)]
    return parts[0] if len(parts) == 1 else ffmpeg.concat(*parts, v=0, a=1)


def _explain_failure(narration: list[Path], music: Path | None) -> None:
    """After ffmpeg failed: name the input that has no audio (ffmpeg's own message names a stream index)."""
    named = [(f"narration[{i}]", path) for i, path in enumerate(narration)]
    for name, path in [*named, *([("music", music)] if music is not None else [])]:
        if stream_of(probe(path, name), "audio") is None:
            raise NodeFailure(f"input {name!r} has no audio stream")


def _measure(narration: list[Path], slots: list[int], music: Path | None) -> tuple[Loudness, float | None]:
    """The joined narration's loudness and peak, and the music's loudness: two short decode passes at once."""
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            speech = pool.submit(loudness_and_peak, _joined(narration, slots), "measure the narration loudness")
            bed = None
            if music is not None:
                bed = pool.submit(audio_loudness, ffmpeg.input(str(music)).audio, "measure the music loudness")
            result = speech.result(), bed.result() if bed is not None else None
    except NodeFailure:
        _explain_failure(narration, music)
        raise
    if result[1] is not None and result[1] <= SILENCE_LUFS:
        raise NodeFailure("input 'music' is silent")
    return result


def _with_music(voice: Any, track: Any, music_gain: float, duck: bool, level: float) -> Any:
    """The narration with the music track added ``music_gain`` dB louder (or quieter), ducked under speech."""
    track = track.filter("volume", volume=f"{music_gain:.3f}dB")
    if duck:
        split = voice.filter_multi_output("asplit", 2)
        voice, key = split[0], split[1]
        # the compressor listens to the narration: about 10 dB of reduction while someone speaks
        threshold = 10 ** ((level - _DUCK_BELOW_DB) / 20)
        track = ffmpeg.filter(
            [track, key], "sidechaincompress", threshold=f"{threshold:.6f}", ratio=8, attack=20, release=400
        )
    return ffmpeg.filter([voice, track], "amix", inputs=2, duration="first", normalize=0)


@node_type(
    "audio.mix",
    category="audio",
    impl_version="1",
    inputs=[
        Port("narration", "audio", is_list=True,
             description="every scene's narration, in order (any rate and channels)"),
        Port("seconds", "number", is_list=True,
             description="every scene's slot, as given to video.segment: its narration is cut or padded to it"),
        Port("fps", "integer", optional=True, default=30,
             description="the segments' frame rate: slots are whole frames"),
        Port("music", "audio", optional=True,
             description="a bed as long as the video (audio.music fits one): cut at the end, or padded with silence"),
        Port("loudness", "number", optional=True, default=-16.0,
             description="integrated loudness of the narration, in LUFS"),
        Port("music_db", "number", optional=True, default=-18.0,
             description="music level relative to the narration's loudness, in dB"),
        Port("duck", "boolean", optional=True, default=True, description="lower the music while the narration speaks"),
    ],
    outputs=[
        Port("audio", "audio",
             description="M4A (AAC), exactly as long as the slots together: video.compose copies it"),
        Port("seconds", "number", description="its length"),
        Port("levels", "json", description="what was measured and the gains applied"),
    ],
    resources={"ffmpeg": 1},
    environment=ffmpeg_environment,
)
def mix(
    ctx: NodeContext,
    narration: list[Path],
    seconds: list[float],
    fps: int,
    music: Path | None,
    loudness: float,
    music_db: float,
    duck: bool,
) -> dict[str, Any]:
    """Narration in its slots at ``loudness`` LUFS, plus music ``music_db`` below it and ducked under speech."""
    if not narration:
        raise NodeFailure("input 'narration' is an empty list; there is nothing to mix")
    if len(seconds) != len(narration):
        raise NodeFailure(
            f"inputs 'narration' and 'seconds' have {len(narration)} and {len(seconds)} elements;"
            " give one slot per scene"
        )
    if not -60 <= loudness <= 0:
        raise NodeFailure(f"input 'loudness': {loudness} is outside -60..0 LUFS")
    check_fps(fps)
    slots = [audio_samples(frame_count(value, fps, f"seconds[{i}]"), fps) for i, value in enumerate(seconds)]
    total = sum(slots)

    speech, bed = _measure(narration, slots, music)
    spoken = speech.integrated > SILENCE_LUFS
    # One constant gain to the target; the limiter below catches the peaks it pushes past the ceiling.
    gain = loudness - speech.integrated if spoken else 0.0
    level = loudness if spoken else _REFERENCE_LUFS
    levels: dict[str, Any] = {
        "narration_lufs": speech.integrated, "narration_peak_dbfs": speech.peak, "narration_gain_db": round(gain, 3),
        "target_lufs": loudness, "music_lufs": bed, "music_gain_db": None, "ducked": False,
    }
    sound = _joined(narration, slots).filter("volume", volume=f"{gain:.3f}dB")
    if music is not None and bed is not None:
        music_gain = level + music_db - bed
        ducked = duck and spoken
        sound = _with_music(sound, fitted_pcm(ffmpeg.input(str(music)).audio, total), music_gain, ducked, level)
        levels |= {"music_gain_db": round(music_gain, 3), "ducked": ducked}
    # level=0: limit only, never rescale; latency=1: no delay, the track stays sample-exact
    ceiling = 10 ** (_CEILING_DBFS / 20)
    sound = sound.filter("alimiter", limit=f"{ceiling:.6f}", attack=5, release=50, level=0, latency=1)
    out = ctx.path("soundtrack.m4a")
    try:
        run_ffmpeg(ffmpeg.output(sound, str(out), movflags="+faststart", **AUDIO_CODEC), "mix the soundtrack")
    except NodeFailure:
        _explain_failure(narration, music)
        raise
    return {"audio": out, "seconds": total / AUDIO_RATE, "levels": levels}


NODE_TYPES = [mix]
