"""The subtitles node: word timings -> ASS with the spoken word highlighted, plus SRT and WebVTT.

ASS: words are grouped into short lines; each line is written as one Dialogue event per word
slice (from a word's start to the next word's start) showing the whole line with the current
word coloured, which libass (ffmpeg's ``ass``/``subtitles`` filters) renders exactly.

Any text must render literally. ASS has no general escape, so (verified by burning with libass):
``{``/``}`` become libass's ``\\{``/``\\}``; every backslash is followed by U+2060 WORD JOINER (an
invisible, zero-width character) so ``\\N``, ``\\h`` or a trailing ``\\`` before our own tags can
never form a sequence; control and line-break characters become spaces, since a raw newline would
end the Dialogue line. Burn with ``ass_filter_arg(path)``, which escapes the path for ffmpeg's
filter syntax.
"""

from __future__ import annotations

import functools
import math
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..types import NodeContext, NodeFailure, NodeType, Port, node_type

WORD_JOINER = "\u2060"
SENTENCE_END = (".", "!", "?", "…", ":", ";")
LINE_BREAK_GAP_S = 0.8  # a pause this long starts a new line
LINE_HOLD_S = 0.5  # a line stays up this long after its last word, unless the next line starts
POSITIONS = {"bottom": (2, 0.16), "center": (5, 0.0), "top": (8, 0.10)}  # ASS alignment, margin / height
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_SAFE_FONT = re.compile(r"^[\w .\-]+$")


@dataclass(frozen=True)
class Preset:
    size: float  # font size as a fraction of the frame width
    bold: bool
    primary: str
    highlight: str
    outline_color: str
    outline: float  # outline width as a fraction of the font size (box padding for BorderStyle 3)
    shadow: float
    border_style: int = 1  # 1: outline and shadow; 3: opaque box in the outline colour
    outline_alpha: int = 0  # 0 opaque .. 255 transparent
    cumulative: bool = False  # karaoke fill: every word already spoken stays highlighted


PRESETS: dict[str, Preset] = {
    "bold": Preset(0.075, True, "#FFFFFF", "#FFD60A", "#000000", 0.09, 0.03),
    "clean": Preset(0.058, False, "#FFFFFF", "#4CC9F0", "#000000", 0.05, 0.0),
    "karaoke-yellow": Preset(0.07, True, "#FFFFFF", "#FFE600", "#1A1A1A", 0.08, 0.02, cumulative=True),
    "boxed": Preset(0.062, True, "#FFFFFF", "#FFD60A", "#000000", 0.18, 0.0, border_style=3, outline_alpha=0x50),
}


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Line:
    words: tuple[Word, ...]
    start: float
    end: float


# ---- escaping --------------------------------------------------------------------------------
def plain_text(text: str) -> str:
    """Text on one line: control, line and paragraph separator characters become spaces."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


def ass_text(text: str) -> str:
    """Text that libass shows literally (no override blocks, no \\N, \\h, \\n sequences)."""
    text = plain_text(text).replace("\\", "\\" + WORD_JOINER)
    return text.replace("{", "\\{").replace("}", "\\}")


def srt_text(text: str) -> str:
    """SRT has no escapes; a word joiner breaks <tags>, {\\overrides}, backslash sequences and '-->'."""
    text = plain_text(text)
    for token in ("<", "{", "\\"):
        text = text.replace(token, token + WORD_JOINER)
    return text.replace("-->", "--" + WORD_JOINER + ">")


def vtt_text(text: str) -> str:
    """WebVTT cue text is HTML-like: escape &, < and > as character references."""
    return plain_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _filter_escape(text: str) -> str:
    # av_get_token takes the character after a backslash literally; escaping every ASCII
    # character that could be special (quotes, separators, brackets, spaces) is always safe.
    return "".join("\\" + ch if ch.isascii() and not (ch.isalnum() or ch in "/._-") else ch for ch in text)


def ass_filter_arg(path: Path | str) -> str:
    """``ass=filename=…`` for ``-vf``/``-filter_complex`` (ffmpeg-python: ``.output(..., vf=ass_filter_arg(p))``).

    The path is escaped twice, as ffmpeg parses it twice: once as a filter option value, once as
    part of the filtergraph. Do not hand the result to ffmpeg-python's ``.filter()``, which
    escapes again.
    """
    return "ass=filename=" + _filter_escape(_filter_escape(str(Path(path).resolve())))


# ---- timing ----------------------------------------------------------------------------------
def parse_words(words: Any, duration: float) -> list[Word]:
    if not isinstance(words, list):
        raise NodeFailure(f"input 'words' must be a JSON list of {{text, start, end}}, got {type(words).__name__}")
    parsed: list[Word] = []
    cursor = 0.0
    for index, item in enumerate(words):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise NodeFailure(f"input 'words': item {index} must be an object with a string 'text'")
        times = [item.get("start"), item.get("end")]
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in times):
            raise NodeFailure(f"input 'words': item {index} needs numeric 'start' and 'end' seconds")
        start, end = float(times[0]), float(times[1])
        if end < start:
            raise NodeFailure(f"input 'words': item {index} ends ({end}) before it starts ({start})")
        if start < cursor - 0.001:
            raise NodeFailure(
                f"input 'words': item {index} starts at {start}, before the previous word ends ({cursor})"
            )
        start = min(max(start, cursor), duration)
        end = min(max(end, start), duration)
        parsed.append(Word(item["text"], start, end))
        cursor = end
    return parsed


def group_lines(words: list[Word], max_words: int, duration: float) -> list[Line]:
    """Lines of at most ``max_words``, broken after sentence punctuation and at long pauses."""
    groups: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if not plain_text(word.text).strip():
            continue
        if current and (len(current) >= max_words or word.start - current[-1].end > LINE_BREAK_GAP_S):
            groups.append(current)
            current = []
        current.append(word)
        if word.text.rstrip("\"'”’»)]").endswith(SENTENCE_END):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    lines: list[Line] = []
    for index, group in enumerate(groups):
        spoken = [w for w in group if w.end > w.start] or group
        start = spoken[0].start
        next_start = groups[index + 1][0].start if index + 1 < len(groups) else duration
        end = max(group[-1].end, min(group[-1].end + LINE_HOLD_S, next_start, duration))
        lines.append(Line(tuple(group), start, end))
    return lines


def _cs(seconds: float) -> int:
    return max(0, round(seconds * 100))


def _ass_time(cs: int) -> str:
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _clock(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{separator}{ms % 1000:03d}"


# ---- writers ---------------------------------------------------------------------------------
def _ass_color(hex_color: str, alpha: int = 0) -> str:
    r, g, b = hex_color[1:3], hex_color[3:5], hex_color[5:7]
    return f"&H{alpha:02X}{b}{g}{r}".upper()


def write_ass(path: Path, lines: list[Line], style: Preset, font: str, font_size: int, width: int, height: int,
              position: str) -> None:
    alignment, margin = POSITIONS[position]
    outline = round(font_size * style.outline, 1)
    shadow = round(font_size * style.shadow, 1)
    primary, highlight = _ass_color(style.primary), _ass_color(style.highlight)
    outline_color = _ass_color(style.outline_color, style.outline_alpha)
    head = [
        "[Script Info]",
        "; written by reelgraph subtitles.render",
        "ScriptType: v4.00+",
        f"PlayResX: {width}",
        f"PlayResY: {height}",
        "WrapStyle: 0",
        "ScaledBorderAndShadow: yes",
        "YCbCr Matrix: None",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
        "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
        "MarginR, MarginV, Encoding",
        f"Style: Caption,{font},{font_size},{primary},{highlight},{outline_color},"
        f"&H80000000,{-1 if style.bold else 0},0,0,0,100,100,0,0,{style.border_style},{outline},{shadow},{alignment},"
        f"{round(width * 0.07)},{round(width * 0.07)},{round(height * margin)},1",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    events: list[str] = []
    for line in lines:
        texts = [ass_text(w.text) for w in line.words]
        spoken = [i for i, w in enumerate(line.words) if _cs(w.end) > _cs(w.start)]
        starts = [_cs(line.start)] + [_cs(line.words[i].start) for i in spoken[1:]]
        ends = starts[1:] + [_cs(line.end)]
        if not spoken:  # nothing in the line is heard (emoji, dashes): show it without a highlight
            spoken, starts, ends = [-1], [_cs(line.start)], [_cs(line.end)]
        for active, start, end in zip(spoken, starts, ends):
            if end <= start:
                continue
            shown = [
                f"{{\\1c{highlight}&}}{text}{{\\r}}" if (i <= active if style.cumulative else i == active) else text
                for i, text in enumerate(texts)
            ]
            events.append(f"Dialogue: 0,{_ass_time(start)},{_ass_time(end)},Caption,,0,0,0,,{' '.join(shown)}")
    path.write_text("\n".join(head + events) + "\n", encoding="utf-8")


def write_srt(path: Path, lines: list[Line]) -> None:
    cues = [
        f"{n}\n{_clock(line.start, ',')} --> {_clock(line.end, ',')}\n"
        f"{' '.join(srt_text(w.text) for w in line.words)}\n"
        for n, line in enumerate(lines, 1)
    ]
    path.write_text("\n".join(cues), encoding="utf-8")


def write_vtt(path: Path, lines: list[Line]) -> None:
    """WebVTT cues per line, with karaoke timestamp tags before each later word."""
    cues = ["WEBVTT\n"]
    for line in lines:
        parts: list[str] = []
        for i, word in enumerate(line.words):
            tag = f"<{_clock(word.start, '.')}>" if 0 < i and line.start < word.start < line.end else ""
            parts.append(tag + vtt_text(word.text))
        cues.append(f"{_clock(line.start, '.')} --> {_clock(line.end, '.')}\n{' '.join(parts)}\n")
    path.write_text("\n".join(cues), encoding="utf-8")


# ---- node ------------------------------------------------------------------------------------
@functools.cache
def installed_font_families() -> frozenset[str] | None:
    """Font families fontconfig (and so libass) can find; None where fontconfig's tools are missing."""
    if shutil.which("fc-list") is None:
        return None
    listing = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True, check=False).stdout
    # fontconfig may backslash-escape characters such as '-' in names it prints
    return frozenset(name.replace("\\", "").strip().lower() for row in listing.splitlines() for name in row.split(","))


def _style(preset: str, primary_color: str, highlight_color: str, outline_color: str) -> Preset:
    base = PRESETS.get(preset)
    if base is None:
        raise NodeFailure(f"input 'preset': {preset!r} is not one of {', '.join(PRESETS)}")
    overrides: dict[str, str] = {}
    for name, field_name, value in (("primary_color", "primary", primary_color),
                                    ("highlight_color", "highlight", highlight_color),
                                    ("outline_color", "outline_color", outline_color)):
        if value:
            if not _COLOR.match(value):
                raise NodeFailure(f"input {name!r}: {value!r} is not a colour of the form #rrggbb")
            overrides[field_name] = value.upper()
    return replace(base, **overrides)


@node_type(
    "subtitles.render",
    category="subtitles",
    impl_version="1",
    inputs=[
        Port("words", "json", description='[{"text", "start", "end"}, ...] from audio.tts'),
        Port("duration", "number", description="seconds of the audio the words belong to"),
        Port("width", "integer", optional=True, default=1080),
        Port("height", "integer", optional=True, default=1920),
        Port("preset", "string", optional=True, default="bold", description=", ".join(PRESETS)),
        Port("max_words_per_line", "integer", optional=True, default=4),
        Port("font", "string", optional=True, default="DejaVu Sans", description="a font family fontconfig knows"),
        Port("font_size", "integer", optional=True, default=0, description="pixels; 0 takes the preset's"),
        Port("primary_color", "string", optional=True, default="", description="#rrggbb; empty takes the preset's"),
        Port("highlight_color", "string", optional=True, default="", description="#rrggbb; the spoken word"),
        Port("outline_color", "string", optional=True, default="", description="#rrggbb; outline or box"),
        Port("position", "string", optional=True, default="bottom", description="bottom, center or top"),
    ],
    outputs=[Port("ass", "file"), Port("srt", "file"), Port("vtt", "file")],
)
def render(
    ctx: NodeContext, words: Any, duration: float, width: int, height: int, preset: str, max_words_per_line: int,
    font: str, font_size: int, primary_color: str, highlight_color: str, outline_color: str, position: str,
) -> dict[str, Any]:
    """Word-timed subtitles: ASS with the active word highlighted (for burning), SRT and WebVTT."""
    if not math.isfinite(duration) or duration <= 0:
        raise NodeFailure(f"input 'duration': {duration} must be a positive number of seconds")
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise NodeFailure(f"size {width}x{height} is outside 16..8192 pixels")
    if not 1 <= max_words_per_line <= 50:
        raise NodeFailure(f"input 'max_words_per_line': {max_words_per_line} is outside 1..50")
    if position not in POSITIONS:
        raise NodeFailure(f"input 'position': {position!r} is not one of {', '.join(POSITIONS)}")
    if not _SAFE_FONT.match(font):
        raise NodeFailure(f"input 'font': {font!r} is not a font family name (letters, digits, spaces, . and -)")
    families = installed_font_families()
    if families is not None and font.lower() not in families:
        raise NodeFailure(f"input 'font': no font family {font!r} is installed (check with fc-list)")
    if not 0 <= font_size <= 2000:
        raise NodeFailure(f"input 'font_size': {font_size} is outside 0..2000")
    style = _style(preset, primary_color, highlight_color, outline_color)
    size = font_size or max(8, round(width * style.size))
    lines = group_lines(parse_words(words, duration), max_words_per_line, duration)
    outputs = {"ass": ctx.path("subtitles.ass"), "srt": ctx.path("subtitles.srt"), "vtt": ctx.path("subtitles.vtt")}
    write_ass(outputs["ass"], lines, style, font, size, width, height, position)
    write_srt(outputs["srt"], lines)
    write_vtt(outputs["vtt"], lines)
    return outputs


NODE_TYPES: list[NodeType] = [render]
