"""The espeak-ng worker process (tts_espeak_worker.py says why each synthesis gets a fresh one),
apart from the synthesis code so that asking its version (the voice node's cache key) loads
no numpy."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..types import NodeFailure

_WORKER = Path(__file__).with_name("tts_espeak_worker.py")


def run_worker(request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    try:
        proc = subprocess.run(
            [sys.executable, "-I", str(_WORKER)], input=json.dumps(request).encode("utf-8"),
            capture_output=True, timeout=300, check=False,
        )
    except subprocess.TimeoutExpired:
        raise NodeFailure("espeak-ng took more than 5 minutes; is the text very long?") from None
    header, _, body = proc.stdout.partition(b"\n")
    try:
        answer = json.loads(header)
    except ValueError:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise NodeFailure(f"espeak-ng failed: {detail[0]}") from None
    return answer, body


@functools.cache
def espeak_version() -> str:
    """The espeak-ng library version that synthesises (enters the voice node's cache key)."""
    answer, _ = run_worker({"info": True})
    return f"eSpeak NG {answer['version']}" if "version" in answer else "not installed"
