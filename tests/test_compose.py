"""video.segment and video.compose with real ffmpeg: exact normalisation, seamless stream-copy joins,
the music mix, and per-scene caching through the engine."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import ffmpeg
import pytest

from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline import compose, motion
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext, NodeFailure, Port, node_type
from reelgraph.tests.helpers import executed

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg is not installed")

FPS = 10
SEGMENT_DEFAULTS = {
    "subtitles": None, "width": 72, "height": 128, "fps": FPS, "preset": "fast", "codec": "h264", "resolution": "",
}


def context(tmp_path: Path, name: str) -> NodeContext:
    work = tmp_path / name
    work.mkdir(parents=True)
    return NodeContext(work, name, None)


def ffmpeg_run(*args: str) -> str:
    return subprocess.run(["ffmpeg", "-hide_banner", "-nostats", *args], capture_output=True, text=True, check=True).stderr


def tone(path: Path, frequency: int, seconds: float, rate: int = 16000, channels: int = 1, volume_db: float = -6) -> Path:
    source = f"sine=f={frequency}:r={rate}:d={seconds},volume={volume_db}dB"
    ffmpeg_run("-f", "lavfi", "-i", source, "-ac", str(channels), str(path))
    return path


def clip(path: Path, frames: int, rate: int = 15, source: str = "testsrc2=s=160x120") -> Path:
    """A clip from a lavfi source (4:3 test pattern at 15 fps unless told)."""
    ffmpeg_run("-f", "lavfi", "-i", f"{source}:r={rate}", "-frames:v", str(frames), "-pix_fmt", "yuv420p", str(path))
    return path


def segment(tmp_path: Path, name: str, video: Path, audio: Path, seconds: float, **inputs: Any) -> Path:
    values = {**SEGMENT_DEFAULTS, **inputs}
    return compose.segment.run(context(tmp_path, name), video=video, audio=audio, seconds=seconds, **values)["video"]


def streams(path: Path) -> dict[str, dict]:
    info = ffmpeg.probe(str(path), count_frames=None)
    return {s["codec_type"]: s for s in info["streams"]}


def packet_md5s(path: Path) -> list[str]:
    """Per-packet MD5 of the video stream, read by stream copy: equal lists mean identical bitstreams."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy", "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def rms_db(path: Path, audio_filter: str) -> float:
    measure = f"{audio_filter},astats=measure_perchannel=none:measure_overall=RMS_level"
    log = ffmpeg_run("-i", str(path), "-af", measure, "-f", "null", "-")
    return float(re.findall(r"RMS level dB: (-?[\d.]+|-inf)", log)[-1])


def test_segment_normalises_clip_and_narration_to_the_slot(tmp_path):
    # a 4:3, 15 fps clip of 7 frames (0.47 s) and a 0.5 s mono 16 kHz narration, for a 0.87 s slot
    source = clip(tmp_path / "short.mp4", 7)
    narration = tone(tmp_path / "n.wav", 500, 0.5)
    out = segment(tmp_path, "a", source, narration, 0.87)
    found = streams(out)
    video, audio = found["video"], found["audio"]
    assert (video["codec_name"], video["pix_fmt"], video["width"], video["height"]) == ("h264", "yuv420p", 72, 128)
    assert video["r_frame_rate"] == "10/1" and int(video["nb_read_frames"]) == 9  # round(0.87 * 10)
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("aac", "48000", 2)
    assert float(audio["duration"]) == pytest.approx(0.9, abs=1e-3) == float(video["duration"])
    # the narration is padded with silence past its end, not stretched
    assert "silence_start: 0.5" in ffmpeg_run("-i", str(out), "-af", "silencedetect=n=-50dB:d=0.2", "-f", "null", "-")
    # closed GOPs that start with a keyframe, with the shared encoder settings
    first = ffmpeg.probe(str(out), select_streams="v", show_frames=None, read_intervals="%+#1")["frames"][0]
    assert first["key_frame"] == 1 and first["pict_type"] == "I"
    settings = out.read_bytes()
    assert b"open_gop=0" in settings and b"keyint=20" in settings


def test_segment_trims_long_narration_and_long_clip(tmp_path):
    out = segment(tmp_path, "a", clip(tmp_path / "long.mp4", 30), tone(tmp_path / "n.wav", 500, 2.0), 0.5)
    found = streams(out)
    assert int(found["video"]["nb_read_frames"]) == 5
    assert float(found["audio"]["duration"]) == pytest.approx(0.5, abs=1e-3)


def test_segment_resolution_and_h265(tmp_path):
    out = segment(tmp_path, "a", clip(tmp_path / "c.mp4", 3), tone(tmp_path / "n.wav", 500, 0.3), 0.3,
                  resolution="480p", codec="h265")
    video = streams(out)["video"]
    assert (video["codec_name"], video["codec_tag_string"], video["width"], video["height"]) == ("hevc", "hvc1", 480, 854)
    assert int(video["nb_read_frames"]) == 3


@pytest.mark.parametrize(
    ("inputs", "cause"),
    [
        ({"preset": "ultra"}, "input 'preset': 'ultra' is not one of fast, balanced, quality"),
        ({"codec": "vp9"}, "input 'codec': 'vp9' is not one of h264, h265"),
        ({"resolution": "4k"}, "input 'resolution': '4k' is not one of 1080p, 720p, 480p (or empty)"),
    ],
)
def test_segment_refuses_unknown_settings(tmp_path, inputs, cause):
    with pytest.raises(NodeFailure, match=re.escape(cause)):
        segment(tmp_path, "a", tmp_path, tmp_path, 1.0, **inputs)


ASS = """[Script Info]
ScriptType: v4.00+
PlayResX: 72
PlayResY: 128

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,DejaVu Sans,36,&H00FFFFFF,&H00FFFFFF,&H00000000,&H00000000,1,0,0,0,100,100,0,0,1,0,0,5,0,0,0,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.00,0:00:00.30,Default,,0,0,0,,XX
"""


def test_segment_burns_subtitles_from_a_path_with_filtergraph_special_characters(tmp_path):
    # ':' ',' "'" '[' ';' and spaces all mean something to ffmpeg's filtergraph parser
    folder = tmp_path / "we ird:dir,x'y[z]"
    folder.mkdir()
    subtitles = folder / "subs;1.ass"
    subtitles.write_text(ASS)
    black = clip(tmp_path / "black.mp4", 6, rate=10, source="color=c=black:s=72x128")
    out = segment(tmp_path / "out;dir", "seg", black, tone(tmp_path / "n.wav", 500, 0.6), 0.6, subtitles=subtitles)
    log = ffmpeg_run("-i", str(out), "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YMAX", "-f", "null", "-")
    peaks = [int(v) for v in re.findall(r"YMAX=(\d+)", log)]
    assert len(peaks) == 6
    assert min(peaks[:3]) > 150 and max(peaks[3:]) < 40  # white text for 0.3 s, then plain black


def three_scenes(tmp_path: Path, slots: tuple[float, ...] = (0.8, 1.0, 0.6)) -> list[Path]:
    """Segments whose narrations are tones filling their whole slot, so any gap at a join is silence."""
    made = []
    for index, (seconds, frequency) in enumerate(zip(slots, (300, 400, 500))):
        narration = tone(tmp_path / f"n{index}.wav", frequency, seconds, rate=22050 + 1000 * index)
        source = clip(tmp_path / f"c{index}.mp4", round(seconds * 15))
        made.append(segment(tmp_path, f"s{index}", source, narration, seconds))
    return made


def test_three_segments_join_seamlessly_by_stream_copy(tmp_path):
    segments = three_scenes(tmp_path)
    out = compose.compose.run(context(tmp_path, "final"), segments=segments, music=None, music_db=-18.0, duck=True)["video"]
    found = streams(out)
    video, audio = found["video"], found["audio"]
    assert int(video["nb_read_frames"]) == 8 + 10 + 6
    assert float(video["duration"]) == pytest.approx(2.4, abs=1e-6)
    assert abs(float(audio["duration"]) - float(video["duration"])) < 1 / FPS
    assert float(video["start_time"]) == 0.0 == float(audio["start_time"])  # no A/V offset from AAC priming
    # the picture is the segments' own bitstream, copied packet for packet
    assert packet_md5s(out) == [md5 for path in segments for md5 in packet_md5s(path)]
    # narration continuous across the cuts at 0.8 s and 1.8 s: no silence anywhere before the end
    log = ffmpeg_run("-i", str(out), "-af", "atrim=0:2.37,silencedetect=n=-40dB:d=0.004", "-f", "null", "-")
    assert "silence_start" not in log
    assert ffmpeg_run("-v", "error", "-i", str(out), "-f", "null", "-").strip() == ""  # decodes without errors
    assert b"moov" in out.read_bytes()[:200]  # +faststart: the index comes first


def test_music_sits_below_the_narration_and_ducks_under_speech(tmp_path):
    # narration: a 1 kHz tone for the first 0.6 s of each 1.5 s slot; music: a steady 200 Hz tone
    segments = []
    for index in range(2):
        speech = tone(tmp_path / f"n{index}.wav", 1000, 0.6)
        segments.append(segment(tmp_path, f"s{index}", clip(tmp_path / f"c{index}.mp4", 20), speech, 1.5))
    music = tone(tmp_path / "music.wav", 200, 1.0, rate=44100, channels=2, volume_db=0)  # looped to 3 s by compose

    def mixed(name: str, duck: bool) -> Path:
        return compose.compose.run(context(tmp_path, name), segments=segments, music=music, music_db=-18.0, duck=duck)["video"]

    def music_level(path: Path, start: float, end: float) -> float:
        return rms_db(path, f"atrim={start}:{end},lowpass=f=400,lowpass=f=400")

    plain, ducked = mixed("plain", False), mixed("ducked", True)
    assert float(streams(plain)["audio"]["duration"]) == pytest.approx(3.0, abs=0.03)
    voice = rms_db(plain, "atrim=0.1:0.5,highpass=f=600,highpass=f=600")
    assert music_level(plain, 1.1, 1.45) - voice == pytest.approx(-18, abs=2.5)
    assert abs(music_level(plain, 0.2, 0.5) - music_level(plain, 1.1, 1.45)) < 1  # steady without ducking
    for start in (0.0, 1.5):  # both scenes: quieter under speech than in the pause after it
        assert music_level(ducked, start + 0.2, start + 0.5) < music_level(ducked, start + 1.1, start + 1.45) - 6
    # the music never drowns the narration
    assert rms_db(ducked, "atrim=0.1:0.5,highpass=f=600,highpass=f=600") == pytest.approx(voice, abs=0.5)


def test_compose_refuses_segments_encoded_differently(tmp_path):
    narration = tone(tmp_path / "n.wav", 500, 0.5)
    source = clip(tmp_path / "c.mp4", 5)
    small = segment(tmp_path, "a", source, narration, 0.5)
    large = segment(tmp_path, "b", source, narration, 0.5, width=96, height=160)
    with pytest.raises(NodeFailure) as failure:
        compose.compose.run(context(tmp_path, "final"), segments=[small, large], music=None, music_db=-18.0, duck=True)
    message = str(failure.value)
    assert message.startswith("segment 2 was encoded differently from segment 1 (")
    assert "video width 96 vs 72" in message and "video height 160 vs 128" in message


# A stand-in narrator for the engine test: a tone per line whose length follows the text, so the
# scene's timing comes from its narration exactly as with a real TTS node.
@node_type(
    "testmedia.narrate",
    inputs=[Port("text", "string")],
    outputs=[Port("audio", "audio"), Port("seconds", "number")],
    resources={"ffmpeg": 1},
)
def narrate(ctx: NodeContext, text: str) -> dict[str, Any]:
    seconds = 0.3 + 0.05 * len(text)
    frequency = 200 + int(hashlib.sha256(text.encode()).hexdigest(), 16) % 600
    return {"audio": tone(ctx.path("voice.wav"), frequency, seconds), "seconds": seconds}


def scenes_recipe(lines: str) -> dict:
    size = {"width": 72, "height": 128}
    return {
        "name": "scenes",
        "nodes": {
            "lines": {"type": "text.split", "inputs": {"text": lines, "separator": ";"}},
            "card": {"type": "image.title_card", "inputs": {"text": {"link": ["lines", "items"]}, **size}},
            "voice": {"type": "testmedia.narrate", "inputs": {"text": {"link": ["lines", "items"]}}},
            "clip": {
                "type": "video.i2v",
                "inputs": {"image": {"link": ["card", "image"]}, "seconds": {"link": ["voice", "seconds"]}, "fps": FPS, **size},
            },
            "segment": {
                "type": "video.segment",
                "inputs": {
                    "video": {"link": ["clip", "video"]},
                    "audio": {"link": ["voice", "audio"]},
                    "seconds": {"link": ["voice", "seconds"]},
                    "fps": FPS,
                    "preset": "fast",
                    **size,
                },
            },
            "final": {"type": "video.compose", "inputs": {"segments": {"link": ["segment", "video"]}}},
        },
        "outputs": {"video": {"link": ["final", "video"]}},
    }


def test_editing_one_scene_reencodes_only_that_segment(engine, tmp_path):
    registry = NodeRegistry([*BUILTIN_TYPES, *motion.NODE_TYPES, *compose.NODE_TYPES, narrate])

    def run(lines: str):
        return engine.run(bind_recipe(parse_recipe(scenes_recipe(lines)), registry, base_dir=tmp_path))

    first = run("one;two;three")
    assert first.status == "succeeded", first.failures
    assert {(n, e) for n, e in executed(first) if n == "segment"} == {("segment", 0), ("segment", 1), ("segment", 2)}
    edited = run("one;TWO;three")
    assert executed(edited) == {("lines", None), ("card", 1), ("voice", 1), ("clip", 1), ("segment", 1), ("final", None)}
    final = engine.store.blob_path(edited.outputs["video"].elements[0]["$artifact"])
    frames = sum(round((0.3 + 0.05 * len(text)) * FPS) for text in ("one", "TWO", "three"))
    assert int(streams(final)["video"]["nb_read_frames"]) == frames
