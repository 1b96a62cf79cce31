"""reelgraph as a ComfyUI node pack: every reelgraph node type as a ComfyUI node.

ComfyUI imports the repository root's ``__init__.py``, which asks this package for its mappings.
Building them reads ``manifest.json`` (the node declarations, generated from the registry by
``python -m reelgraph.comfy_pack.manifest``) and nothing heavier: node implementations and their
libraries are imported when a node first executes (``runtime.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = Path(__file__).resolve().parent / "manifest.json"


def load_declarations() -> list[dict[str, Any]]:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))["nodes"]


def mappings() -> tuple[dict[str, type], dict[str, str]]:
    """``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` for ComfyUI."""
    from .classes import build_classes

    return build_classes(load_declarations())
