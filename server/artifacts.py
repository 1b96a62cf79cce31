"""Serving blobs: ids are checked before any path is built, types come from the bytes.

The store keeps no file names, so the content type is sniffed from the first bytes (media
signatures, then UTF-8 text). Ranges are checked here so that a bad Range header gets the
API's JSON error shape; the bytes are sent by Starlette's FileResponse (206, multipart ranges).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..engine.canonical import is_digest
from .errors import ApiError

_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"OggS", "audio/ogg"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"WEBVTT", "text/vtt; charset=utf-8"),
]
_RIFF = {b"WAVE": "audio/wav", b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"}
_RANGE = re.compile(r"bytes=\s*(\d*-\d*)(\s*,\s*\d*-\d*)*\s*")



def check_digest(digest: str) -> None:
    if not is_digest(digest):
        raise ApiError(400, "bad_request", "an artifact id is 'sha256:' followed by 64 lowercase hex digits")


def sniff(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(512)
    for offset, magic, kind in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":  # ISO base media: mp4, mov, m4a
        brand = head[8:12]
        if brand.startswith(b"qt"):
            return "video/quicktime"
        return "audio/mp4" if brand.startswith(b"M4A") else "video/mp4"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "audio/mpeg"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at 512 bytes is still text
        if exc.start < len(head) - 3:
            return "application/octet-stream"
        text = head[:exc.start].decode("utf-8")
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return "application/json"
    return "text/plain; charset=utf-8"


def check_range(header: str | None, size: int) -> None:
    """ApiError for a Range header that is malformed (400) or outside the file (416)."""
    if header is None:
        return
    if not _RANGE.fullmatch(header):
        raise ApiError(400, "bad_request", f"malformed Range header {header!r}; use bytes=START-END")
    for part in header.split("=", 1)[1].split(","):
        start, _, end = part.strip().partition("-")
        if not start and not end:
            raise ApiError(400, "bad_request", f"malformed Range header {header!r}")
        if start and end and int(start) > int(end):
            raise ApiError(400, "bad_request", f"range {part.strip()!r} ends before it starts")
        if (start and int(start) >= size) or size == 0:
            raise ApiError(416, "range_not_satisfiable", f"range {part.strip()!r} starts beyond the {size} bytes",
                           headers={"Content-Range": f"bytes */{size}"})
        if not start and int(end) == 0:
            raise ApiError(416, "range_not_satisfiable", "a suffix range of 0 bytes is empty",
                           headers={"Content-Range": f"bytes */{size}"})
