"""Folder inputs: the media files a node reads from a local folder, and the fingerprint that puts
their state into the node's cache key (``NodeType.fingerprint``).

A folder path is a plain string input, so its digest says nothing about the files inside. The
fingerprint lists the files the node would consider (the same filter the node uses, from here)
with their size and modification time in nanoseconds, like make, ninja and DVC's stat cache:
listing a large music library costs one ``stat`` per file, where hashing its contents on every
run would read gigabytes. The trade-off: touching a file reruns the node (harmless: identical
output bytes stop the rerun there), and an edit that keeps both size and mtime goes unnoticed
(``--force NODE`` reruns it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .types import NodeFailure


def open_folder(input_name: str, text: str) -> Path:
    """The folder an input names (``~`` expanded); NodeFailure naming the input when it is not one."""
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise NodeFailure(f"input {input_name!r}: {text!r} is not a folder")
    return folder


def media_files(folder: Path, suffixes: frozenset[str], *, recursive: bool) -> list[Path]:
    """The files in ``folder`` whose suffix (in any case) is one of ``suffixes``, sorted by
    relative path; ``recursive`` includes subfolders."""
    entries = folder.rglob("*") if recursive else folder.iterdir()
    found = [path for path in entries if path.suffix.lower() in suffixes and path.is_file()]
    return sorted(found, key=lambda path: path.relative_to(folder).as_posix())


def folder_fingerprint(input_name: str, text: str, suffixes: frozenset[str], *, recursive: bool) -> dict[str, str]:
    """``{"files in input 'NAME'": digest}`` over (relative path, size, mtime_ns) of the media files.

    The label is what ``why_dirty`` shows when the digest changes ("files in input 'library' changed")."""
    folder = open_folder(input_name, text)
    listing = hashlib.sha256()
    for path in media_files(folder, suffixes, recursive=recursive):
        stat = path.stat()
        listing.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {f"files in input {input_name!r}": "sha256:" + listing.hexdigest()}
