"""video.segment, audio.mix and video.compose with real ffmpeg: exact normalisation, the soundtrack
(slots, loudness, music ducking), seamless stream-copy joins, and per-scene caching through the engine."""

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
from reelgraph.nodes.pipeline import compose, mix, motion
from reelgraph.nodes.pipeline.check import integrated_loudness
from reelgraph.nodes.pipeline.mp4 import read_tracks, track_of
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


def segment(tmp_path: Path, name: str, video: Path, seconds: float, **inputs: Any) -> Path:
    values = {**SEGMENT_DEFAULTS, **inputs}
    return compose.segment.run(context(tmp_path, name), video=video, seconds=seconds, **values)["video"]


MIX_DEFAULTS = {"fps": FPS, "music": None, "loudness": -16.0, "music_db": -18.0, "duck": True}


def soundtrack(tmp_path: Path, name: str, narration: list[Path], seconds: list[float], **inputs: Any) -> dict[str, Any]:
    values = {**MIX_DEFAULTS, **inputs}
    return dict(mix.mix.run(context(tmp_path, name), narration=narration, seconds=seconds, **values))


def join(tmp_path: Path, name: str, segments: list[Path], audio: Path | None) -> Path:
    return compose.compose.run(context(tmp_path, name), segments=segments, audio=audio)["video"]


def streams(path: Path) -> dict[str, dict]:
    info = ffmpeg.probe(str(path), count_frames=None)
    return {s["codec_type"]: s for s in info["streams"]}


def packet_md5s(path: Path, kind: str = "v") -> list[str]:
    """Per-packet MD5 of the video (or audio) stream, read by stream copy: equal lists mean identical bitstreams."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", f"0:{kind}", "-c", "copy", "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def rms_db(path: Path, audio_filter: str) -> float:
    measure = f"{audio_filter},astats=measure_perchannel=none:measure_overall=RMS_level"
    log = ffmpeg_run("-i", str(path), "-af", measure, "-f", "null", "-")
    return float(re.findall(r"RMS level dB: (-?[\d.]+|-inf)", log)[-1])


def loudness_lufs(path: Path) -> float:
    return integrated_loudness(ffmpeg_run("-i", str(path), "-af", "ebur128=framelog=verbose", "-f", "null", "-"))


def peak_dbfs(path: Path) -> float:
    log = ffmpeg_run("-i", str(path), "-af", "astats=measure_perchannel=none:measure_overall=Peak_level", "-f", "null", "-")
    return float(re.findall(r"Peak level dB: (-?[\d.]+|-inf)", log)[-1])


def test_segment_normalises_the_clip_to_the_slot(tmp_path):
    # a 4:3, 15 fps clip of 7 frames (0.47 s) for a 0.87 s slot
    out = segment(tmp_path, "a", clip(tmp_path / "short.mp4", 7), 0.87)
    found = streams(out)
    video = found["video"]
    assert set(found) == {"video"}  # the narration goes to audio.mix, not into the segment
    assert (video["codec_name"], video["pix_fmt"], video["width"], video["height"]) == ("h264", "yuv420p", 72, 128)
    assert video["r_frame_rate"] == "10/1" and int(video["nb_read_frames"]) == 9  # round(0.87 * 10)
    assert float(video["duration"]) == pytest.approx(0.9, abs=1e-3)
    # closed GOPs that start with a keyframe, with the shared encoder settings
    first = ffmpeg.probe(str(out), select_streams="v", show_frames=None, read_intervals="%+#1")["frames"][0]
    assert first["key_frame"] == 1 and first["pict_type"] == "I"
    settings = out.read_bytes()
    assert b"open_gop=0" in settings and b"keyint=20" in settings


def test_segment_cuts_a_long_clip(tmp_path):
    out = segment(tmp_path, "a", clip(tmp_path / "long.mp4", 30), 0.5)
    assert int(streams(out)["video"]["nb_read_frames"]) == 5


def test_segment_resolution_and_h265(tmp_path):
    out = segment(tmp_path, "a", clip(tmp_path / "c.mp4", 3), 0.3, resolution="480p", codec="h265")
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
        segment(tmp_path, "a", tmp_path, 1.0, **inputs)


def test_segment_names_an_input_that_is_no_video(tmp_path):
    with pytest.raises(NodeFailure, match=re.escape("input 'video' has no video stream")):
        segment(tmp_path, "a", tone(tmp_path / "n.wav", 500, 0.5), 0.5)


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
    out = segment(tmp_path / "out;dir", "seg", black, 0.6, subtitles=subtitles)
    log = ffmpeg_run("-i", str(out), "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YMAX", "-f", "null", "-")
    peaks = [int(v) for v in re.findall(r"YMAX=(\d+)", log)]
    assert len(peaks) == 6
    assert min(peaks[:3]) > 150 and max(peaks[3:]) < 40  # white text for 0.3 s, then plain black


def three_scenes(tmp_path: Path, slots: tuple[float, ...] = (0.8, 1.0, 0.6)) -> tuple[list[Path], list[Path]]:
    """(segments, narrations): narrations are tones filling their whole slot, so any gap at a join is silence."""
    segments, narrations = [], []
    for index, (seconds, frequency) in enumerate(zip(slots, (300, 400, 500))):
        narrations.append(tone(tmp_path / f"n{index}.wav", frequency, seconds, rate=22050 + 1000 * index))
        segments.append(segment(tmp_path, f"s{index}", clip(tmp_path / f"c{index}.mp4", round(seconds * 15)), seconds))
    return segments, narrations


def test_three_segments_join_seamlessly_with_the_soundtrack(tmp_path):
    segments, narrations = three_scenes(tmp_path)
    mixed = soundtrack(tmp_path, "mix", narrations, [0.8, 1.0, 0.6])
    assert mixed["seconds"] == pytest.approx(2.4, abs=1e-9)
    out = join(tmp_path, "final", segments, mixed["audio"])
    found = streams(out)
    video, audio = found["video"], found["audio"]
    assert int(video["nb_read_frames"]) == 8 + 10 + 6
    assert float(video["duration"]) == pytest.approx(2.4, abs=1e-6)
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("aac", "48000", 2)
    assert float(audio["duration"]) == pytest.approx(2.4, abs=1e-3)
    assert float(video["start_time"]) == 0.0 == float(audio["start_time"])  # no A/V offset from AAC priming
    # both streams copied packet for packet: the segments' bitstream, the soundtrack's AAC
    assert packet_md5s(out) == [md5 for path in segments for md5 in packet_md5s(path)]
    assert packet_md5s(out, "a") == packet_md5s(mixed["audio"], "a")
    # narration continuous across the cuts at 0.8 s and 1.8 s: no silence anywhere before the end
    log = ffmpeg_run("-i", str(out), "-af", "atrim=0:2.37,silencedetect=n=-40dB:d=0.004", "-f", "null", "-")
    assert "silence_start" not in log
    assert ffmpeg_run("-v", "error", "-i", str(out), "-f", "null", "-").strip() == ""  # decodes without errors
    assert b"moov" in out.read_bytes()[:200]  # +faststart: the index comes first


def test_the_mp4_reader_agrees_with_ffprobe(tmp_path):
    segments, narrations = three_scenes(tmp_path, (0.7,))
    mixed = soundtrack(tmp_path, "mix", narrations, [0.7])["audio"]
    for path in (segments[0], mixed, join(tmp_path, "final", segments, mixed)):
        tracks = read_tracks(path)
        probed = {s["codec_type"]: s for s in ffmpeg.probe(str(path), show_data_hash="sha256", count_frames=None)["streams"]}
        assert {t.kind for t in tracks} == set(probed)
        for track in tracks:
            stream = probed[track.kind]
            assert track.track_id == int(stream["id"], 16)
            assert track.config_sha256 == stream["extradata_hash"].removeprefix("SHA256:")
            assert float(track.seconds) == pytest.approx(float(stream["duration"]), abs=1e-3)
            if track.kind == "video":
                assert (track.codec, track.width, track.height) == ("avc1", stream["width"], stream["height"])
                assert track.samples == int(stream["nb_read_frames"]) and track.frame_rate == FPS
            else:
                assert (track.codec, track.channels, track.sample_rate) == ("mp4a", 2, 48000)
    assert track_of(read_tracks(segments[0]), "audio") is None


def test_each_narration_starts_on_its_slot_and_is_padded_with_silence(tmp_path):
    # 0.5 s of narration in a 0.87 s slot (9 frames: 0.9 s), then 0.4 s in a 0.5 s slot
    narrations = [tone(tmp_path / "a.wav", 500, 0.5), tone(tmp_path / "b.wav", 700, 0.4, rate=44100, channels=2)]
    mixed = soundtrack(tmp_path, "mix", narrations, [0.87, 0.5])
    assert mixed["seconds"] == pytest.approx(1.4, abs=1e-9)
    assert float(streams(mixed["audio"])["audio"]["duration"]) == pytest.approx(1.4, abs=1e-3)
    log = ffmpeg_run("-i", str(mixed["audio"]), "-af", "silencedetect=n=-50dB:d=0.05", "-f", "null", "-")
    starts = [float(v) for v in re.findall(r"silence_start: ([\d.]+)", log)]
    ends = [float(v) for v in re.findall(r"silence_end: ([\d.]+)", log)]
    # silence after the first narration up to the next slot at 0.9 s, and after the second to the end
    assert starts[0] == pytest.approx(0.5, abs=0.01) and ends[0] == pytest.approx(0.9, abs=0.01)
    assert starts[1] == pytest.approx(1.3, abs=0.01)


def test_music_sits_below_the_narration_and_ducks_under_speech(tmp_path):
    # narration: a 1 kHz tone for the first 0.6 s of each 1.5 s slot; music: a steady 200 Hz tone
    segments = [segment(tmp_path, f"s{i}", clip(tmp_path / f"c{i}.mp4", 20), 1.5) for i in range(2)]
    narrations = [tone(tmp_path / f"n{i}.wav", 1000, 0.6) for i in range(2)]
    music = tone(tmp_path / "music.wav", 200, 3.0, rate=44100, channels=2, volume_db=0)

    def mixed(name: str, duck: bool) -> Path:
        made = soundtrack(tmp_path, name, narrations, [1.5, 1.5], music=music, duck=duck)
        assert made["levels"]["ducked"] is duck and made["levels"]["music_lufs"] < -10
        return join(tmp_path, f"{name}-final", segments, made["audio"])

    def music_level(path: Path, start: float, end: float) -> float:
        return rms_db(path, f"atrim={start}:{end},lowpass=f=400,lowpass=f=400")

    plain, ducked = mixed("plain", False), mixed("ducked", True)
    assert float(streams(plain)["audio"]["duration"]) == pytest.approx(3.0, abs=1e-3)
    voice = rms_db(plain, "atrim=0.1:0.5,highpass=f=600,highpass=f=600")
    assert music_level(plain, 1.1, 1.45) - voice == pytest.approx(-18, abs=2.5)
    assert abs(music_level(plain, 0.2, 0.5) - music_level(plain, 1.1, 1.45)) < 1  # steady without ducking
    for start in (0.0, 1.5):  # both scenes: quieter under speech than in the pause after it
        assert music_level(ducked, start + 0.2, start + 0.5) < music_level(ducked, start + 1.1, start + 1.45) - 6
    # the music never drowns the narration
    assert rms_db(ducked, "atrim=0.1:0.5,highpass=f=600,highpass=f=600") == pytest.approx(voice, abs=0.5)


def test_music_shorter_than_the_video_ends_in_silence_not_a_loop(tmp_path):
    narration = [tone(tmp_path / "n.wav", 1000, 0.3)]
    music = tone(tmp_path / "music.wav", 200, 1.0, rate=48000, channels=2, volume_db=0)
    out = soundtrack(tmp_path, "mix", narration, [2.0], music=music, duck=False)["audio"]
    assert rms_db(out, "atrim=0.5:0.9") > -60  # the music under and after the narration ...
    assert rms_db(out, "atrim=1.1:1.9") < -80  # ... ends with its file (audio.music loops and fades a bed)


@pytest.mark.parametrize("target", [-16.0, -23.0])
def test_narration_is_brought_to_the_target_loudness(tmp_path, target):
    quiet, loud = tone(tmp_path / "quiet.wav", 440, 2.0, volume_db=-20), tone(tmp_path / "loud.wav", 440, 2.0, volume_db=12)
    for name, narration in (("quiet", quiet), ("loud", loud)):
        made = soundtrack(tmp_path, f"{name}{target}", [narration], [2.0], loudness=target)
        assert loudness_lufs(made["audio"]) == pytest.approx(target, abs=0.5)
        assert made["levels"]["target_lufs"] == target
        assert made["levels"]["narration_gain_db"] == pytest.approx(target - made["levels"]["narration_lufs"], abs=0.01)


def test_silent_narration_keeps_the_music_at_a_reference_level(tmp_path):
    silence = tmp_path / "silence.wav"
    ffmpeg_run("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono:d=1.5", str(silence))
    music = tone(tmp_path / "music.wav", 200, 1.5, rate=48000, channels=2, volume_db=0)
    made = soundtrack(tmp_path, "mix", [silence], [1.5], music=music)
    assert made["levels"]["narration_gain_db"] == 0 and made["levels"]["ducked"] is False
    assert loudness_lufs(made["audio"]) == pytest.approx(-16 - 18, abs=1.0)  # the reference level, music_db below


def test_peaks_that_the_gain_would_push_past_the_ceiling_are_limited(tmp_path):
    # a quiet tone (-40 dBFS) with a 20 ms burst 20 dB above it: raising it to -16 LUFS would clip the burst
    narration = tmp_path / "burst.wav"
    source = ("sine=f=300:r=48000:d=4,volume=-22dB[a];"
              "sine=f=300:r=48000:d=0.02,volume=-2dB,adelay=2000S:all=1[b];[a][b]amix=normalize=0")
    ffmpeg_run("-filter_complex", source, str(narration))
    made = soundtrack(tmp_path, "mix", [narration], [4.0])
    assert made["levels"]["narration_peak_dbfs"] + made["levels"]["narration_gain_db"] > 0  # would clip unlimited
    assert peak_dbfs(made["audio"]) < -0.5
    assert loudness_lufs(made["audio"]) == pytest.approx(-16, abs=1.0)


def test_mix_names_a_narration_without_audio(tmp_path):
    narrations = [tone(tmp_path / "n.wav", 500, 0.5), clip(tmp_path / "c.mp4", 5)]
    with pytest.raises(NodeFailure, match=re.escape("input 'narration[1]' has no audio stream")):
        soundtrack(tmp_path, "mix", narrations, [0.5, 0.5])
    with pytest.raises(NodeFailure, match=re.escape("inputs 'narration' and 'seconds' have 2 and 1 elements")):
        soundtrack(tmp_path, "mix2", narrations, [0.5])


def test_compose_refuses_segments_encoded_differently(tmp_path):
    source = clip(tmp_path / "c.mp4", 5)
    small = segment(tmp_path, "a", source, 0.5)
    large = segment(tmp_path, "b", source, 0.5, width=96, height=160)
    with pytest.raises(NodeFailure) as failure:
        join(tmp_path, "final", [small, large], None)
    message = str(failure.value)
    assert message.startswith("segment 2 was encoded differently from segment 1 (")
    assert "video width 96 vs 72" in message and "video height 160 vs 128" in message


def test_compose_refuses_a_soundtrack_of_another_length(tmp_path):
    segments, narrations = three_scenes(tmp_path, (0.8, 0.6))
    other_fps = soundtrack(tmp_path, "mix", narrations, [0.8, 0.6], fps=4)["audio"]  # 3 + 2 frames: 1.25 s
    with pytest.raises(NodeFailure, match=re.escape("input 'audio' lasts 1.250 s but the segments 1.400 s")):
        join(tmp_path, "final", segments, other_fps)
    with pytest.raises(NodeFailure, match="input 'audio' is not an MP4/M4A file"):
        join(tmp_path, "final2", segments, narrations[0])


def test_compose_without_a_soundtrack_joins_the_picture_alone(tmp_path):
    segments, _ = three_scenes(tmp_path, (0.5, 0.3))
    found = streams(join(tmp_path, "final", segments, None))
    assert set(found) == {"video"} and int(found["video"]["nb_read_frames"]) == 8


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
            "soundtrack": {
                "type": "audio.mix",
                "inputs": {"narration": {"link": ["voice", "audio"]}, "seconds": {"link": ["voice", "seconds"]}, "fps": FPS},
            },
            "segment": {
                "type": "video.segment",
                "inputs": {
                    "video": {"link": ["clip", "video"]},
                    "seconds": {"link": ["voice", "seconds"]},
                    "fps": FPS,
                    "preset": "fast",
                    **size,
                },
            },
            "final": {
                "type": "video.compose",
                "inputs": {"segments": {"link": ["segment", "video"]}, "audio": {"link": ["soundtrack", "audio"]}},
            },
        },
        "outputs": {"video": {"link": ["final", "video"]}},
    }


def test_editing_one_scene_reencodes_only_that_segment(engine, tmp_path):
    registry = NodeRegistry([*BUILTIN_TYPES, *motion.NODE_TYPES, *mix.NODE_TYPES, *compose.NODE_TYPES, narrate])

    def run(lines: str):
        return engine.run(bind_recipe(parse_recipe(scenes_recipe(lines)), registry, base_dir=tmp_path))

    first = run("one;two;three")
    assert first.status == "succeeded", first.failures
    assert {(n, e) for n, e in executed(first) if n == "segment"} == {("segment", 0), ("segment", 1), ("segment", 2)}
    edited = run("one;TWO;three")
    assert executed(edited) == {
        ("lines", None), ("card", 1), ("voice", 1), ("clip", 1), ("segment", 1), ("soundtrack", None), ("final", None),
    }
    final = engine.store.blob_path(edited.outputs["video"].elements[0]["$artifact"])
    frames = sum(round((0.3 + 0.05 * len(text)) * FPS) for text in ("one", "TWO", "three"))
    found = streams(final)
    assert int(found["video"]["nb_read_frames"]) == frames
    assert float(found["audio"]["duration"]) == pytest.approx(frames / FPS, abs=1e-3)
