"""The offline image source: a local folder, matched by file name against the query words."""

from __future__ import annotations

import re
from pathlib import Path

from ..folder_inputs import media_files

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})


def _tokens(text: str) -> set[str]:
    return {token for token in re.findall(r"[^\W_]+", text.lower()) if len(token) > 1}


def find_in_folder(folder: Path, query: str) -> Path | None:
    """The image whose name shares the most words with the query (ties: the name sorted first);
    None when no file name shares a word. Subfolders are searched too; the result is deterministic."""
    wanted = _tokens(query)
    best: tuple[float, str] | None = None
    chosen: Path | None = None
    for path in media_files(folder, IMAGE_SUFFIXES, recursive=True):
        relative = path.relative_to(folder).as_posix()
        shared = len(wanted & _tokens(path.stem)) + 0.5 * len(wanted & _tokens(str(path.parent.relative_to(folder))))
        if shared <= 0:
            continue
        rank = (-shared, relative)
        if best is None or rank < best:
            best, chosen = rank, path
    return chosen
