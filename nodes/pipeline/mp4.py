"""The few facts video.compose needs from the MP4 files it joins, read from their boxes.

Why not ffprobe: compose runs after an edit on the critical path, and one ffprobe process per
segment costs more (about 70 ms of CPU each, mostly loading ffmpeg's libraries) than the whole
stream-copy mux. The index (``moov``) of a file ffmpeg wrote holds everything needed: codec,
size, the codec configuration record (the bytes that must match for a stream-copy join),
sample counts and durations. Only the index is read; media data is skipped.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

# Boxes that only contain other boxes, on the way from the top to the sample tables.
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"})
# Sample-entry boxes that hold the codec configuration, by the sample entry's kind.
_VISUAL_ENTRY = 78  # bytes of a VisualSampleEntry before its child boxes
_AUDIO_ENTRY = 28  # bytes of an AudioSampleEntry (version 0) before its child boxes
_CONFIG_BOXES = frozenset({b"avcC", b"hvcC", b"esds", b"dOps", b"av1C", b"vpcC"})


class Mp4Error(ValueError):
    """The file is not an MP4 whose index this reader understands."""


@dataclass(frozen=True)
class Track:
    kind: str  # "video", "audio" or the handler type
    track_id: int
    codec: str  # the sample entry's four-character code: avc1, hvc1, mp4a ...
    timescale: int
    samples: int
    sample_ticks: int  # the summed sample durations, in `timescale` ticks
    width: int = 0
    height: int = 0
    channels: int = 0
    sample_rate: int = 0
    config_sha256: str = ""  # of the codec configuration record (avcC, hvcC, esds ...)
    edit_start: int = 0  # ticks skipped at the start by the edit list (AAC priming)
    edit_seconds: Fraction | None = None  # presented length from the edit list, when it gives one

    @property
    def seconds(self) -> Fraction:
        """Presented length: the edit list's when it has one, else the samples' minus the skipped start."""
        if self.edit_seconds is not None:
            return self.edit_seconds
        return Fraction(self.sample_ticks - self.edit_start, self.timescale)

    @property
    def frame_rate(self) -> Fraction:
        """Samples per second over the track (for video: frames per second)."""
        return Fraction(self.samples * self.timescale, self.sample_ticks) if self.sample_ticks else Fraction(0)


def _boxes(stream: BinaryIO, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload offset, payload size) of the boxes from the current position up to ``end``."""
    found = []
    position = stream.tell()
    while position + 8 <= end:
        stream.seek(position)
        size, kind = struct.unpack(">I4s", stream.read(8))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", stream.read(8))
            header = 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise Mp4Error(f"box {kind!r} at byte {position} has a bad size {size}")
        found.append((kind, position + header, size - header))
        position += size
    return found


def _full_box(data: bytes) -> tuple[int, bytes]:
    """(version, payload after version and flags) of a full box."""
    if len(data) < 4:
        raise Mp4Error("truncated box")
    return data[0], data[4:]


def _read(stream: BinaryIO, offset: int, size: int) -> bytes:
    stream.seek(offset)
    data = stream.read(size)
    if len(data) != size:
        raise Mp4Error("the file ends inside a box")
    return data


def _descriptor(data: bytes, position: int) -> tuple[int, int, int]:
    """(tag, content offset, content size) of the MPEG-4 descriptor at ``position``."""
    tag, size, position = data[position], 0, position + 1
    for _ in range(4):  # the size: up to four bytes of seven bits, high bit = more follow
        byte = data[position]
        size, position = (size << 7) | (byte & 0x7F), position + 1
        if not byte & 0x80:
            break
    return tag, position, size


def _decoder_specific_info(esds: bytes) -> bytes:
    """The codec's own configuration inside an ``esds`` (for AAC: the AudioSpecificConfig), so
    that the hash, like ffprobe's extradata hash, ignores the bitrate fields around it."""
    tag, position, _ = _descriptor(esds, 0)
    if tag != 0x03:  # ES_Descriptor
        raise Mp4Error("esds without an ES descriptor")
    flags = esds[position + 2]
    position += 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
    if flags & 0x40:  # a URL: its length byte, then the URL
        position += 1 + esds[position]
    tag, position, _ = _descriptor(esds, position)
    if tag != 0x04:  # DecoderConfigDescriptor: 13 bytes of fields, then the specific info
        raise Mp4Error("esds without a decoder configuration")
    tag, position, size = _descriptor(esds, position + 13)
    return esds[position : position + size] if tag == 0x05 else b""


def _sample_entry(body: bytes) -> dict[str, object]:
    """The first sample description of an ``stsd`` box (after version and flags): codec, and size
    or channels and rate, and the hash of its codec configuration record."""
    (count,) = struct.unpack(">I", body[:4])
    if count < 1 or len(body) < 12:
        raise Mp4Error("no sample description")
    size, kind = struct.unpack(">I4s", body[4:12])
    entry = body[12 : 4 + size]
    facts: dict[str, object] = {"codec": kind.decode("latin-1")}
    if len(entry) >= _VISUAL_ENTRY and kind in (b"avc1", b"avc3", b"hvc1", b"hev1", b"av01", b"vp09", b"mp4v"):
        facts["width"], facts["height"] = struct.unpack(">HH", entry[24:28])
        children = entry[_VISUAL_ENTRY:]
    elif len(entry) >= _AUDIO_ENTRY:
        facts["channels"] = struct.unpack(">H", entry[16:18])[0]
        facts["sample_rate"] = struct.unpack(">I", entry[24:28])[0] >> 16
        children = entry[_AUDIO_ENTRY:]
    else:
        children = b""
    position = 0
    while position + 8 <= len(children):
        child_size, child_kind = struct.unpack(">I4s", children[position : position + 8])
        if child_size < 8:
            break
        if child_kind in _CONFIG_BOXES:
            config = children[position + 8 : position + child_size]
            if child_kind == b"esds":
                config = _decoder_specific_info(config[4:])  # after the full box's version and flags
            facts["config_sha256"] = hashlib.sha256(config).hexdigest()
            break
        position += child_size
    return facts


def _track(stream: BinaryIO, offset: int, size: int, movie_timescale: int) -> Track:
    facts: dict[str, object] = {}
    edit: tuple[int, int] | None = None  # (presented ticks in the movie timescale, media start)

    def walk(start: int, length: int) -> None:
        nonlocal edit
        stream.seek(start)
        for kind, payload, payload_size in _boxes(stream, start + length):
            if kind in _CONTAINERS:
                walk(payload, payload_size)
            elif kind in (b"tkhd", b"mdhd", b"hdlr", b"elst", b"stsd", b"stts", b"stsz"):
                version, body = _full_box(_read(stream, payload, payload_size))
                if kind == b"tkhd":
                    facts["track_id"] = struct.unpack(">I", body[16:20] if version == 1 else body[8:12])[0]
                elif kind == b"mdhd":
                    facts["timescale"] = struct.unpack(">I", body[16:20] if version == 1 else body[8:12])[0]
                elif kind == b"hdlr":
                    handler = body[4:8]
                    facts["kind"] = {b"vide": "video", b"soun": "audio"}.get(handler, handler.decode("latin-1"))
                elif kind == b"elst":
                    (count,) = struct.unpack(">I", body[:4])
                    if count == 1:  # what ffmpeg writes: one edit that skips the priming, if any
                        fmt = ">Qq" if version == 1 else ">Ii"
                        edit = struct.unpack(fmt, body[4 : 4 + struct.calcsize(fmt)])
                elif kind == b"stsd":
                    facts.update(_sample_entry(body))
                elif kind == b"stts":
                    (count,) = struct.unpack(">I", body[:4])
                    pairs = struct.unpack(f">{2 * count}I", body[4 : 4 + 8 * count])
                    facts["sample_ticks"] = sum(n * d for n, d in zip(pairs[::2], pairs[1::2]))
                elif kind == b"stsz":
                    facts["samples"] = struct.unpack(">I", body[4:8])[0]

    walk(offset, size)
    missing = {"kind", "track_id", "timescale", "codec", "samples", "sample_ticks"} - facts.keys()
    if missing:
        raise Mp4Error(f"a track lacks {', '.join(sorted(missing))}")
    if not facts["timescale"]:
        raise Mp4Error("a track has a timescale of 0")
    if edit is not None:
        presented, start = edit
        facts["edit_start"] = max(start, 0)
        if presented and movie_timescale:
            facts["edit_seconds"] = Fraction(presented, movie_timescale)
    return Track(**facts)  # type: ignore[arg-type]


def read_tracks(path: Path) -> list[Track]:
    """The tracks of an MP4/MOV file, from its index. Raises Mp4Error for anything else."""
    try:
        with path.open("rb") as stream:
            end = path.stat().st_size
            top = _boxes(stream, end)
            moov = next(((offset, size) for kind, offset, size in top if kind == b"moov"), None)
            if moov is None or not top or top[0][0] not in (b"ftyp", b"moov", b"free", b"wide"):
                raise Mp4Error("no MP4 index (moov box)")
            stream.seek(moov[0])
            children = _boxes(stream, moov[0] + moov[1])
            header = next(((offset, size) for kind, offset, size in children if kind == b"mvhd"), None)
            if header is None:
                raise Mp4Error("no movie header (mvhd box)")
            version, body = _full_box(_read(stream, *header))
            movie_timescale = struct.unpack(">I", body[16:20] if version == 1 else body[8:12])[0]
            return [_track(stream, offset, size, movie_timescale) for kind, offset, size in children if kind == b"trak"]
    except (struct.error, OSError) as exc:
        raise Mp4Error(str(exc)) from None


def track_of(tracks: list[Track], kind: str) -> Track | None:
    return next((t for t in tracks if t.kind == kind), None)
