"""video.i2v (Ken Burns) and video.interpolate with real ffmpeg on tiny media, probed with ffprobe."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import ffmpeg
import pytest
from PIL import Image

from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline import motion
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext, NodeFailure

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg is not installed")

I2V_DEFAULTS = {
    "fps": 10, "width": 72, "height": 128, "motion": "zoom_in", "start_zoom": 0.0, "end_zoom": 0.0, "easing": "ease_in_out",
}


def context(tmp_path: Path, name: str) -> NodeContext:
    work = tmp_path / name
    work.mkdir()
    return NodeContext(work, name, None)


def landscape(tmp_path: Path) -> Path:
    """A 4:3 picture with a horizontal luma gradient, so any horizontal move changes the mean."""
    image = Image.linear_gradient("L").transpose(Image.Transpose.TRANSPOSE)  # dark left, bright right
    path = tmp_path / "still.png"
    image.resize((160, 120)).convert("RGB").save(path)
    return path


def video_facts(path: Path) -> dict:
    info = ffmpeg.probe(str(path), count_frames=None)
    (stream,) = info["streams"]  # no audio stream either
    return stream


def frame_means(path: Path) -> list[float]:
    """Mean luma of every frame, from signalstats."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [float(line.split("=")[1]) for line in out.splitlines() if "YAVG" in line]


def i2v(tmp_path: Path, name: str, **inputs) -> Path:
    values = {"image": landscape(tmp_path), "seconds": 1.0, **I2V_DEFAULTS, **inputs}
    return motion.image_to_video.run(context(tmp_path, name), **values)["video"]


def test_clip_is_cover_cropped_h264_with_the_exact_frame_count(tmp_path):
    clip = i2v(tmp_path, "a", seconds=0.74)  # 7.4 frames at 10 fps: round() gives 7
    facts = video_facts(clip)
    assert (facts["codec_name"], facts["pix_fmt"], facts["width"], facts["height"]) == ("h264", "yuv420p", 72, 128)
    assert facts["r_frame_rate"] == "10/1"
    assert int(facts["nb_read_frames"]) == 7


def test_motions_move_and_none_stays_still(tmp_path):
    still = frame_means(i2v(tmp_path, "none", motion="none"))
    assert max(still) - min(still) < 0.5
    # on a left-dark, right-bright gradient: panning right brightens, panning left darkens
    right = frame_means(i2v(tmp_path, "right", motion="pan_right"))
    left = frame_means(i2v(tmp_path, "left", motion="pan_left"))
    assert right[-1] - right[0] > 5 and left[0] - left[-1] > 5
    zoomed = frame_means(i2v(tmp_path, "zoom", motion="zoom_in", easing="linear"))
    assert abs(zoomed[-1] - zoomed[0]) < 3  # a centred zoom keeps the mean of a symmetric ramp


def test_slow_pan_moves_by_sub_pixel_steps_without_judder(tmp_path):
    # 20 frames across 72 * (1 - 1/1.2) = 12 px: 0.63 px a frame. An integer-pixel crop
    # (zoompan) would alternate between still frames and 1 px jumps; sub-pixel sampling moves evenly.
    means = frame_means(i2v(tmp_path, "pan", motion="pan_right", seconds=2.0, start_zoom=1.2, end_zoom=1.2, easing="linear"))
    steps = [b - a for a, b in zip(means, means[1:])]
    assert len(steps) == 19
    average = sum(steps) / len(steps)
    assert average > 0.5
    assert min(steps) > 0.5 * average and max(steps) < 1.5 * average, steps


def test_easing_starts_and_ends_slowly(tmp_path):
    means = frame_means(i2v(tmp_path, "ease", motion="pan_right", seconds=2.0, easing="ease_in_out"))
    steps = [b - a for a, b in zip(means, means[1:])]
    assert steps[0] < 0.3 * steps[len(steps) // 2] and steps[-1] < 0.3 * steps[len(steps) // 2]


@pytest.mark.parametrize(
    ("inputs", "cause"),
    [
        ({"motion": "spin"}, "input 'motion': 'spin' is not one of none, zoom_in"),
        ({"easing": "bounce"}, "input 'easing': 'bounce' is not one of linear"),
        ({"start_zoom": 0.5}, "input 'start_zoom': 0.5 is outside 1..8.0"),
        ({"width": 71}, "size 71x128 must be even"),
        ({"seconds": 0.01}, "input 'seconds': 0.01 s at 10 fps is less than one frame"),
    ],
)
def test_bad_inputs_fail_with_the_reason(tmp_path, inputs, cause):
    with pytest.raises(NodeFailure, match="^" + re.escape(cause)):
        i2v(tmp_path, "bad", **inputs)


def test_unreadable_image_fails_through_the_engine(engine, tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture")
    registry = NodeRegistry([*BUILTIN_TYPES, *motion.NODE_TYPES])
    document = {
        "name": "bad-image",
        "nodes": {"clip": {"type": "video.i2v", "inputs": {"image": "notes.txt", "seconds": 1.0}}},
        "outputs": {"clip": {"link": ["clip", "video"]}},
    }
    result = engine.run(bind_recipe(parse_recipe(document), registry, base_dir=tmp_path))
    (failure,) = result.failures
    assert failure.error["cause"].startswith("input 'image' is not an image Pillow can read")


@pytest.mark.parametrize("method", ["blend", "duplicate", "minterpolate"])
def test_interpolate_gives_exact_frames_for_the_duration(tmp_path, method):
    source = tmp_path / "ten.mp4"  # 0.7 s at 10 fps = 7 frames
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=72x128:r=10", "-frames:v", "7", "-pix_fmt", "yuv420p",
         str(source)],
        check=True,
    )
    out = motion.interpolate.run(context(tmp_path, method), video=source, fps=24, method=method)["video"]
    facts = video_facts(out)
    assert int(facts["nb_read_frames"]) == round(0.7 * 24)  # 17
    assert facts["r_frame_rate"] == "24/1"
    assert (facts["width"], facts["height"]) == (72, 128)
    assert float(facts["duration"]) == pytest.approx(17 / 24, abs=1e-3)


def test_interpolate_refuses_unknown_method(tmp_path):
    with pytest.raises(NodeFailure, match="input 'method': 'wavelet' is not one of minterpolate, blend, duplicate"):
        motion.interpolate.run(context(tmp_path, "x"), video=tmp_path, fps=24, method="wavelet")
    with pytest.raises(NodeFailure, match="video.interpolate method 'rife' needs a ComfyUI instance"):
        motion.interpolate.run(context(tmp_path, "y"), video=tmp_path, fps=24, method="rife")
