"""Workflows embedded in ComfyUI outputs: PNG text chunks, WEBP EXIF, video container tags, and
the first-frame PNG VideoHelperSuite writes beside a video.

ComfyUI stores ``prompt`` (API format) and ``workflow`` (UI format) as JSON strings. The UI
workflow is preferred: it carries titles, groups and the recipe facts an export put there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import GraphError, RecipeInvalid

IMAGE_SUFFIXES = frozenset({".png", ".webp", ".jpg", ".jpeg", ".avif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".webm", ".mkv", ".flac", ".mp3", ".ogg", ".opus", ".m4a"})
KEYS = ("workflow", "prompt")  # in order of preference


def is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


def _decode(texts: dict[str, Any]) -> tuple[str, Any] | None:
    for key in KEYS:
        value = texts.get(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, str) and value.strip():
            try:
                return key, json.loads(value)
            except ValueError:
                continue
    return None


def _image_texts(path: Path) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            texts: dict[str, Any] = dict(getattr(image, "text", {}) or {})
            texts.update({k: v for k, v in image.info.items() if k in KEYS and k not in texts})
            exif = image.getexif()
    except (OSError, UnidentifiedImageError):
        return {}
    # SaveAnimatedWEBP: tag 0x0110 is "prompt:<json>", the tags below 0x0110 "<key>:<json>"
    for tag in range(0x0100, 0x0111):
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, str) and ":" in value:
            key, _, text = value.partition(":")
            if key in KEYS:
                texts.setdefault(key, text)
    return texts


def _video_texts(path: Path) -> dict[str, Any]:
    import ffmpeg

    try:
        probe = ffmpeg.probe(str(path))
    except ffmpeg.Error:
        return {}
    tags = {str(k).lower(): v for k, v in (probe.get("format", {}).get("tags") or {}).items()}
    if "comment" in tags and not any(k in tags for k in KEYS):  # some writers fold extras into comment
        try:
            folded = json.loads(tags["comment"])
            if isinstance(folded, dict):
                tags.update({k: json.dumps(v) if not isinstance(v, str) else v for k, v in folded.items()})
        except ValueError:
            pass
    return tags


def read_embedded_workflow(path: Path) -> tuple[str, Any]:
    """(``"workflow"`` or ``"prompt"``, document) from an image or video ComfyUI wrote.
    Raises RecipeInvalid when the file carries none."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise RecipeInvalid([GraphError("bad_json", "", f"cannot read {path}: no such file")])
    found = _decode(_image_texts(path) if suffix in IMAGE_SUFFIXES else _video_texts(path))
    if found is None and suffix in VIDEO_SUFFIXES:
        side = path.with_suffix(".png")  # VHS_VideoCombine: <name>_00001.mp4 + <name>_00001.png
        if side.is_file():
            found = _decode(_image_texts(side))
    if found is None:
        raise RecipeInvalid([GraphError(
            "bad_structure", "",
            f"{path.name} carries no ComfyUI workflow (no 'workflow' or 'prompt' metadata"
            + (f", and no {path.with_suffix('.png').name} beside it)" if suffix in VIDEO_SUFFIXES else ")"),
        )])
    return found
