"""Running ffmpeg through ffmpeg-python with errors a user can read."""

from __future__ import annotations

import functools
import shutil
import subprocess
from typing import Any

import ffmpeg

from ..types import NodeFailure


@functools.cache
def ffmpeg_version() -> str:
    """First line of ``ffmpeg -version``: enters the cache key of every ffmpeg node."""
    if shutil.which("ffmpeg") is None:
        raise NodeFailure("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    out = subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0] if out else "unknown"


def ffmpeg_environment() -> dict[str, Any]:
    return {"ffmpeg": ffmpeg_version()}


def run_ffmpeg(stream: Any, what: str) -> None:
    """Run a built ffmpeg-python stream; a failure names what was being done and ffmpeg's own reason."""
    try:
        stream.overwrite_output().global_args("-hide_banner", "-nostdin", "-loglevel", "error").run(
            capture_stdout=True, capture_stderr=True
        )
    except ffmpeg.Error as exc:
        lines = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise NodeFailure(f"ffmpeg failed to {what}: {' | '.join(lines[-3:]) or 'no message'}") from None
