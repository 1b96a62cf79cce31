"""audio.music with real ffmpeg: exact length, loudness, looping without gaps, track choice, errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import ffmpeg
import pytest

from reelgraph.nodes.pipeline import music
from reelgraph.nodes.types import NodeContext, NodeFailure

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg is not installed")


def run(tmp_path: Path, name: str, **inputs) -> Path:
    work = tmp_path / name
    work.mkdir()
    values = {"library": "", "track": "", "volume_db": -18.0, **inputs}
    return music.music.run(NodeContext(work, name, None), **values)["audio"]


def tone(path: Path, frequency: int, seconds: float) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"sine=f={frequency}:r=44100:d={seconds}", "-ac", "1", str(path)],
        check=True,
    )
    return path


def analyse(path: Path, audio_filter: str) -> str:
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", audio_filter, "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr


def loudness(path: Path) -> float:
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", analyse(path, "ebur128=framelog=40"))[-1])


def rms_db(path: Path, audio_filter: str = "anull") -> float:
    log = analyse(path, f"{audio_filter},astats=measure_perchannel=none:measure_overall=RMS_level")
    return float(re.findall(r"RMS level dB: (-?[\d.]+|-inf)", log)[-1])


def wav_facts(path: Path) -> dict:
    (stream,) = ffmpeg.probe(str(path))["streams"]
    return stream


def test_offline_pad_is_exact_deterministic_and_at_the_asked_loudness(tmp_path):
    first = run(tmp_path, "a", seconds=1.5, volume_db=-20.0)
    facts = wav_facts(first)
    assert (facts["codec_name"], int(facts["sample_rate"]), facts["channels"]) == ("pcm_s16le", 48000, 2)
    assert int(facts["duration_ts"]) == 72000  # exactly 1.5 s of samples
    assert loudness(first) == pytest.approx(-20.0, abs=0.6)
    assert first.read_bytes() == run(tmp_path, "b", seconds=1.5, volume_db=-20.0).read_bytes()


def test_short_track_loops_without_gaps_and_fades_out(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    tone(library / "short.wav", 300, 0.6)
    out = run(tmp_path, "loop", seconds=2.0, library=str(library))
    assert int(wav_facts(out)["duration_ts"]) == 96000
    # a 0.6 s tone repeated to 2 s: any gap at a loop point would show as silence
    assert "silence_start" not in analyse(out, "atrim=0:1.6,silencedetect=n=-50dB:d=0.01")
    assert rms_db(out, "atrim=start=1.95") < rms_db(out, "atrim=0.4:1.0") - 12  # the fade-out


def test_long_track_is_cut_to_length(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    tone(library / "long.flac", 300, 3.0)
    out = run(tmp_path, "cut", seconds=0.75, library=str(library))
    assert int(wav_facts(out)["duration_ts"]) == 36000


def test_track_is_chosen_by_name_else_the_first_in_sorted_order(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    tone(library / "a-low.wav", 200, 1.0)
    tone(library / "b-high.mp3", 4000, 1.0)
    (library / "readme.txt").write_text("not audio")

    def low_share(path: Path) -> float:  # how much of the level survives a 1 kHz low-pass
        return rms_db(path, "lowpass=f=1000,lowpass=f=1000") - rms_db(path)

    assert low_share(run(tmp_path, "first", seconds=0.5, library=str(library))) > -1
    assert low_share(run(tmp_path, "named", seconds=0.5, library=str(library), track="b-high")) < -20
    assert low_share(run(tmp_path, "file", seconds=0.5, library=str(library), track="b-high.mp3")) < -20


def test_library_problems_fail_with_the_reason(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NodeFailure, match="input 'library': '.*nowhere' is not a folder"):
        run(tmp_path, "a", seconds=1.0, library=str(tmp_path / "nowhere"))
    with pytest.raises(NodeFailure, match="input 'library': '.*empty' holds no audio files"):
        run(tmp_path, "b", seconds=1.0, library=str(tmp_path / "empty"))
    tone(tmp_path / "empty" / "x.wav", 300, 0.5)
    with pytest.raises(NodeFailure, match=r"input 'track': no file named 'y' in .* \(it has x.wav\)"):
        run(tmp_path, "c", seconds=1.0, library=str(tmp_path / "empty"), track="y")
    with pytest.raises(NodeFailure, match="input 'seconds': 0 is outside"):
        run(tmp_path, "d", seconds=0)
