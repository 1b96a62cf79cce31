"""The bundled explainer template end to end, offline: real espeak-ng, ffmpeg and libass."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from reelgraph.tests.helpers import read_report, report_executed

pytestmark = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("espeak-ng")), reason="needs ffmpeg and espeak-ng (scripts/setup.sh)"
)

SCENES = ["Bees fly out at dawn.", "They gather nectar from flowers.", "At home they make honey."]
SMALL = ["--param", "width=144", "--param", "height=256", "--param", "fps=12", "--param", "motion_fps=6", "--param", "preset=fast"]


def probe(path: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_type,codec_name,width,height,r_frame_rate,nb_read_frames,sample_rate", "-show_entries",
         "format=duration", "-of", "json", path],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)


def test_explainer_renders_caches_and_reruns_only_the_edited_scene(cli, tmp_path):
    script = "\n\n".join(SCENES)
    cli("run", "explainer", *SMALL, "--param", f"script={script}", "--out", "o1", "--report", "r1.json", check_code=0)
    first = read_report(tmp_path / "r1.json")
    info = probe(first["outputs"]["video"])
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert streams["video"]["codec_name"] == "h264" and (streams["video"]["width"], streams["video"]["height"]) == (144, 256)
    assert streams["video"]["r_frame_rate"] == "12/1"
    assert streams["audio"]["codec_name"] == "aac" and streams["audio"]["sample_rate"] == "48000"
    quality = json.loads((tmp_path / "o1" / "quality.json").read_text())
    assert quality["video"]["frames"] == quality["expected"]["frames"] == int(streams["video"]["nb_read_frames"])
    assert quality["audio"]["loudness_lufs"] > -35  # narration is audible
    assert len(first["outputs"]["subtitles"]) == 3
    assert "They gather nectar" in json.dumps(json.loads((tmp_path / "o1" / "script.json").read_text()))

    cli("run", "explainer", *SMALL, "--param", f"script={script}", "--out", "o2", "--report", "r2.json", check_code=0)
    assert report_executed(read_report(tmp_path / "r2.json")) == set()

    edited = "\n\n".join([SCENES[0], "They collect sweet nectar from many flowers.", SCENES[2]])
    cli("run", "explainer", *SMALL, "--param", f"script={edited}", "--out", "o3", "--report", "r3.json", check_code=0)
    rerun = report_executed(read_report(tmp_path / "r3.json"))
    per_scene = {node for node, element in rerun if element is not None}
    assert {element for _, element in rerun if element is not None} == {1}
    assert {"narration", "voice", "subtitles", "motion", "smooth", "segment", "image", "query"} <= per_scene
    assert {node for node, element in rerun if element is None} == {
        "script", "total", "voice_total", "music", "soundtrack", "compose", "check",
    }
