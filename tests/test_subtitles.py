"""subtitles.render: ASS with the spoken word highlighted, SRT and WebVTT; burned with real libass."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np
import pytest

from reelgraph.engine import RunOptions
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline import subtitles, voice
from reelgraph.nodes.pipeline.subtitles import ass_filter_arg, ass_text, srt_text, vtt_text
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext, NodeFailure

W, H = 216, 384
HOSTILE_DIR = "we'ird: dir, [x]; y=1 \\z"
RENDER_DEFAULTS: dict[str, Any] = {
    "width": W, "height": H, "preset": "bold", "max_words_per_line": 4, "font": "DejaVu Sans", "font_size": 0,
    "primary_color": "", "highlight_color": "", "outline_color": "", "position": "bottom",
}
WORDS = [
    {"text": "One", "start": 0.10, "end": 0.40},
    {"text": "two,", "start": 0.50, "end": 0.80},
    {"text": "🔥", "start": 0.80, "end": 0.80},
    {"text": "three.", "start": 0.90, "end": 1.20},
    {"text": "Four", "start": 2.50, "end": 2.80},
]


def render(tmp_path: Path, words: list[dict[str, Any]], duration: float, **overrides: Any) -> dict[str, Path]:
    work = tmp_path / HOSTILE_DIR / f"run{len(list(tmp_path.glob('*/run*')))}"
    work.mkdir(parents=True)
    return subtitles.render.run(NodeContext(work, "s", None), words=words, duration=duration,
                                **{**RENDER_DEFAULTS, **overrides})


def dialogues(path: Path) -> list[tuple[str, str, str]]:
    rows = [line.split(",", 9) for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("Dialogue:")]
    return [(row[1], row[2], row[9]) for row in rows]


def burn(ass: Path, seconds: float, fps: int = 10) -> np.ndarray:
    """Frames (n, H, W, 3) of a grey clip with the subtitles burned in by ffmpeg's ass filter (libass)."""
    out, _ = (
        ffmpeg.input(f"color=c=gray:s={W}x{H}:d={seconds}:r={fps}", f="lavfi")
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", vf=ass_filter_arg(ass))
        .global_args("-hide_banner", "-nostdin", "-loglevel", "error")
        .run(capture_stdout=True, capture_stderr=True)
    )
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, H, W, 3)


def yellow(region: np.ndarray) -> int:
    r, g, b = (region[..., i].astype(int) for i in range(3))
    return int(((r > 200) & (g > 160) & (b < 100)).sum())


def red(region: np.ndarray) -> int:
    r, g, b = (region[..., i].astype(int) for i in range(3))
    return int(((r > 170) & (g < 80) & (b < 80)).sum())


def bright(region: np.ndarray) -> int:
    return int((region.min(axis=-1) > 220).sum())


# ---- files ---------------------------------------------------------------------------------
def test_one_event_per_word_slice_with_only_that_word_highlighted(tmp_path):
    out = render(tmp_path, WORDS, 3.0)
    events = dialogues(out["ass"])
    # Line 1 is "One two, 🔥 three." (it ends at the full stop); line 2 is "Four".
    assert [(start, end) for start, end, _ in events] == [
        ("0:00:00.10", "0:00:00.50"), ("0:00:00.50", "0:00:00.90"), ("0:00:00.90", "0:00:01.70"),
        ("0:00:02.50", "0:00:03.00"),
    ]
    highlighted = [re.findall(r"\{\\1c&H000AD6FF&\}(.*?)\{\\r\}", text) for _, _, text in events]
    assert highlighted == [["One"], ["two,"], ["three."], ["Four"]]
    assert re.sub(r"\{.*?\}", "", events[1][2]) == "One two, 🔥 three."
    style = next(line for line in out["ass"].read_text().splitlines() if line.startswith("Style:"))
    assert style.split(",")[1:4] == ["DejaVu Sans", str(round(W * 0.075)), "&H00FFFFFF"]
    assert f"PlayResX: {W}" in out["ass"].read_text() and f"PlayResY: {H}" in out["ass"].read_text()


def test_srt_and_vtt_carry_one_cue_per_line(tmp_path):
    out = render(tmp_path, WORDS, 3.0)
    assert out["srt"].read_text(encoding="utf-8") == (
        "1\n00:00:00,100 --> 00:00:01,700\nOne two, 🔥 three.\n\n2\n00:00:02,500 --> 00:00:03,000\nFour\n"
    )
    assert out["vtt"].read_text(encoding="utf-8") == (
        "WEBVTT\n\n00:00:00.100 --> 00:00:01.700\nOne <00:00:00.500>two, <00:00:00.800>🔥 <00:00:00.900>three.\n\n"
        "00:00:02.500 --> 00:00:03.000\nFour\n"
    )


def test_lines_hold_max_words_and_karaoke_preset_fills_cumulatively(tmp_path):
    words = [{"text": w, "start": i * 0.3, "end": i * 0.3 + 0.25} for i, w in enumerate("a b c d e".split())]
    out = render(tmp_path, words, 2.0, max_words_per_line=2, preset="karaoke-yellow", position="top",
                 highlight_color="#112233", font_size=40)
    events = dialogues(out["ass"])
    lines = [re.sub(r"\{.*?\}", "", text) for _, _, text in events]
    assert lines == ["a b", "a b", "c d", "c d", "e"]
    assert events[1][2] == r"{\1c&H00332211&}a{\r} {\1c&H00332211&}b{\r}"  # both spoken words stay filled
    style = next(line for line in out["ass"].read_text().splitlines() if line.startswith("Style:")).split(",")
    assert style[2] == "40" and style[18] == "8"  # font size override; alignment 8 = top centre


def test_no_words_give_valid_empty_files(tmp_path):
    out = render(tmp_path, [], 1.0)
    assert dialogues(out["ass"]) == [] and out["srt"].read_text() == "" and out["vtt"].read_text() == "WEBVTT\n"
    assert burn(out["ass"], 0.2).shape == (2, H, W, 3)


@pytest.mark.parametrize(
    ("overrides", "cause"),
    [
        ({"preset": "neon"}, "input 'preset': 'neon' is not one of bold, clean, karaoke-yellow, boxed"),
        ({"primary_color": "red"}, "input 'primary_color': 'red' is not a colour of the form #rrggbb"),
        ({"font": "Evil,Font"}, "input 'font': 'Evil,Font' is not a font family name (letters, digits, spaces, . and -)"),
        ({"font": "No Such Font Family"}, "input 'font': no font family 'No Such Font Family' is installed (check with fc-list)"),
        ({"position": "left"}, "input 'position': 'left' is not one of bottom, center, top"),
        ({"max_words_per_line": 0}, "input 'max_words_per_line': 0 is outside 1..50"),
    ],
)
def test_bad_inputs_fail_with_a_plain_cause(tmp_path, overrides, cause):
    with pytest.raises(NodeFailure) as failure:
        render(tmp_path, WORDS, 3.0, **overrides)
    assert str(failure.value) == cause


@pytest.mark.parametrize(
    ("words", "cause"),
    [
        ({"text": "x"}, "input 'words' must be a JSON list of {text, start, end}, got dict"),
        ([{"text": 3, "start": 0, "end": 1}], "input 'words': item 0 must be an object with a string 'text'"),
        ([{"text": "x", "start": 1, "end": 0.5}], "input 'words': item 0 ends (0.5) before it starts (1.0)"),
        ([{"text": "x", "start": 0, "end": 1}, {"text": "y", "start": 0.5, "end": 2}],
         "input 'words': item 1 starts at 0.5, before the previous word ends (1.0)"),
    ],
)
def test_bad_words_fail_with_a_plain_cause(tmp_path, words, cause):
    with pytest.raises(NodeFailure) as failure:
        render(tmp_path, words, 3.0)
    assert str(failure.value) == cause


def test_escapes_for_each_format():
    assert ass_text("{\\b1}x\\N\ny}") == "\\{\\\u2060b1\\}x\\\u2060N y\\}"
    assert ass_text("end\\") == "end\\\u2060"  # cannot pair with the tag that follows
    assert srt_text("<b>{\\an8}-->") == "<\u2060b>{\u2060\\\u2060an8}--\u2060>"
    assert vtt_text("a<b>&c-->\u2028d") == "a&lt;b&gt;&amp;c--&gt; d"


# ---- burned with libass ------------------------------------------------------------------
def test_burned_highlight_moves_from_word_to_word(tmp_path):
    words = [{"text": "AAA", "start": 0.1, "end": 0.5}, {"text": "BBB", "start": 0.6, "end": 1.0}]
    out = render(tmp_path, words, 1.2, position="center")
    frames = burn(out["ass"], 1.2)
    first, second = frames[3], frames[8]  # t = 0.3 s (AAA spoken) and t = 0.8 s (BBB spoken)
    left, right = np.s_[:, : W // 2], np.s_[:, W // 2:]
    assert yellow(first[left]) > 100 and yellow(first[right]) == 0
    assert yellow(second[right]) > 100 and yellow(second[left]) == 0
    assert bright(first[right]) > 100 and bright(second[left]) > 100  # the other word stays, in white
    assert bright(frames[0]) == 0 and yellow(frames[0]) == 0  # nothing before the first word


HOSTILE = ["{\\c&H0000FF&\\an8}red", "\\N\\h", "a:b,'c'\"", "[x];=", "}{", "line\nbreak\\", "🔥", "שלום", "مرحبا"]


def test_hostile_text_renders_literally_without_overrides(tmp_path):
    words = [{"text": text, "start": 0.1 + i * 0.1, "end": 0.15 + i * 0.1} for i, text in enumerate(HOSTILE)]
    out = render(tmp_path, words, 1.2, max_words_per_line=20, primary_color="#FFFFFF", font_size=16)
    frames = burn(out["ass"], 1.2)
    frame = frames[10]  # t = 1.0: the whole line is up
    assert red(frame) == 0  # the \c override did not apply
    assert bright(frame[: H // 2]) == 0 and bright(frame[H // 2:]) > 200  # \an8 did not move it to the top
    # Control: the same event with the raw text does inject (so this test can tell).
    raw = out["ass"].with_name("raw.ass")
    raw_text = " ".join(HOSTILE).replace("\n", " ")
    lines = [",".join(line.split(",", 9)[:9] + [raw_text]) if line.startswith("Dialogue:") else line
             for line in out["ass"].read_text(encoding="utf-8").splitlines()]
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    injected = burn(raw, 1.2)[10]
    assert red(injected[: H // 2]) > 0  # raw, the text turns red and moves to the top


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_voice_words_feed_subtitles_through_the_engine(engine, tmp_path):
    registry = NodeRegistry([*BUILTIN_TYPES, *voice.NODE_TYPES, *subtitles.NODE_TYPES])
    document = {
        "name": "voice-and-subtitles",
        "nodes": {
            "v": {"type": "audio.tts", "inputs": {"text": "Stir in 2 cups."}},
            "s": {"type": "subtitles.render", "inputs": {
                "words": {"link": ["v", "words"]}, "duration": {"link": ["v", "duration"]},
                "width": W, "height": H, "max_words_per_line": 2}},
        },
        "outputs": {"ass": {"link": ["s", "ass"]}, "srt": {"link": ["s", "srt"]}, "vtt": {"link": ["s", "vtt"]}},
    }
    result = engine.run(bind_recipe(parse_recipe(document), registry, None, base_dir=tmp_path), RunOptions())
    assert not result.failures, result.failures
    ass = engine.store.blob_path(result.outputs["ass"].elements[0]["$artifact"])
    texts = [re.sub(r"\{.*?\}", "", text) for _, _, text in dialogues(Path(ass))]
    assert texts == ["Stir in", "Stir in", "2 cups.", "2 cups."]  # display text, not "two"
    srt = Path(engine.store.blob_path(result.outputs["srt"].elements[0]["$artifact"])).read_text(encoding="utf-8")
    assert srt.count("-->") == 2
