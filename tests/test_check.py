"""video.check with real ffmpeg: a good clip passes with a report; each defect fails naming what was measured."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline import check
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext, NodeFailure

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg is not installed")

MOVING = "testsrc2=s=72x128:r={fps}:d={seconds}"
TONE = "sine=f=440:r=48000:d={seconds}"


def make(tmp_path: Path, name: str, picture: str = MOVING, sound: str | None = TONE, *, fps: int = 10,
         seconds: float = 1.0, audio_seconds: float | None = None) -> Path:
    """A tiny H.264/AAC MP4 from lavfi sources."""
    out = tmp_path / f"{name}.mp4"
    args = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", picture.format(fps=fps, seconds=seconds)]
    if sound is not None:
        args += ["-f", "lavfi", "-i", sound.format(seconds=audio_seconds or seconds)]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", str(out)]
    subprocess.run(args, check=True)
    return out


def gate(tmp_path: Path, video: Path, **inputs) -> dict:
    work = tmp_path / f"check-{video.stem}"
    work.mkdir(exist_ok=True)
    values = {"seconds": 1.0, "fps": 10, "tolerance": 0.05, "min_loudness_lufs": -35.0, "max_black_fraction": 0.5,
              "max_frozen_seconds": 0.0, **inputs}
    return check.video_check.run(NodeContext(work, "check", None), video=video, **values)


def test_good_clip_passes_through_with_its_measurements(tmp_path):
    clip = make(tmp_path, "good")
    result = gate(tmp_path, clip, max_frozen_seconds=0.3)
    assert result["video"] == clip
    report = result["report"]
    assert report["video"] == {"codec": "h264", "width": 72, "height": 128, "fps": 10.0, "frames": 10, "seconds": 1.0}
    assert report["audio"]["sample_rate"] == 48000 and report["audio"]["channels"] == 2
    assert abs(report["audio"]["drift_seconds"]) < 0.03
    assert -26 < report["audio"]["loudness_lufs"] < -16  # a -3 dBFS sine in both channels
    assert report["black_fraction"] == 0.0
    assert report["longest_freeze_seconds"] == 0.0


@pytest.mark.parametrize(
    ("name", "clip", "inputs", "reason"),
    [
        ("short", {}, {"seconds": 1.5},
         "video has 10 frames (1.000 s at 10 fps) but the slot is 1.500 s (15 frames), beyond the tolerance of 0.05 s"),
        ("rate", {"fps": 12}, {"fps": 10}, "frame rate is 12.000 fps, expected 10"),
        ("black", {"picture": "color=c=black:s=72x128:r={fps}:d={seconds}"}, {},
         "10 of 10 frames are black (100%), more than 50%"),
        ("frozen", {"picture": "color=c=orange:s=72x128:r={fps}:d={seconds}"}, {"max_frozen_seconds": 0.5},
         "the picture is frozen for 1.00 s, longer than 0.5 s"),
        ("silent", {"sound": "anullsrc=r=48000:cl=stereo:d={seconds}"}, {},
         "audio loudness is silent, below the minimum of -35.0 LUFS"),
        ("mute", {"sound": None}, {}, "the video has no audio stream"),
        ("drift", {"audio_seconds": 1.3}, {}, "audio lasts 1.300 s but video 1.000 s: a drift of +0.300 s"),
    ],
)
def test_defects_fail_naming_measured_and_expected(tmp_path, name, clip, inputs, reason):
    video = make(tmp_path, name, **clip)
    with pytest.raises(NodeFailure) as failure:
        gate(tmp_path, video, **inputs)
    message = str(failure.value)
    assert message.startswith("quality check failed: ")
    assert reason in message


def test_frozen_check_is_off_by_default_and_quiet_audio_passes_a_lower_bar(tmp_path):
    still = make(tmp_path, "still", picture="color=c=orange:s=72x128:r={fps}:d={seconds}",
                 sound="sine=f=440:r=48000:d={seconds},volume=-30dB")
    report = gate(tmp_path, still, min_loudness_lufs=-60.0)["report"]
    assert report["longest_freeze_seconds"] is None
    assert -56 < report["audio"]["loudness_lufs"] < -46
    with pytest.raises(NodeFailure, match="below the minimum of -35.0 LUFS"):
        gate(tmp_path, still)


def test_failure_reaches_the_run_report_with_every_problem(engine, tmp_path):
    make(tmp_path, "bad", picture="color=c=black:s=72x128:r={fps}:d={seconds}", sound=None)
    registry = NodeRegistry([*BUILTIN_TYPES, *check.NODE_TYPES])
    document = {
        "name": "gate",
        "nodes": {"qa": {"type": "video.check", "inputs": {"video": "bad.mp4", "seconds": 2.0, "fps": 10}}},
        "outputs": {"video": {"link": ["qa", "video"]}},
    }
    result = engine.run(bind_recipe(parse_recipe(document), registry, base_dir=tmp_path))
    (failure,) = result.failures
    assert failure.error["step"] == "execute"
    cause = failure.error["cause"]
    assert "video has 10 frames" in cause and "frames are black" in cause and "no audio stream" in cause
