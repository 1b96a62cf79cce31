"""reelgraph as a ComfyUI node pack: every reelgraph node type as a ComfyUI node.

ComfyUI imports the repository root's ``__init__.py``, which asks this package for its mappings.
Building them reads ``manifest.json`` (the built-in node declarations, generated from the registry
by ``python -m reelgraph.comfy_pack.manifest``) and the cached declarations of installed plugins
(``plugins.py``), and nothing heavier: node implementations and their libraries are imported when
a node first executes (``runtime.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = Path(__file__).resolve().parent / "manifest.json"


def load_declarations() -> list[dict[str, Any]]:
    """The built-in node types' declarations."""
    return json.loads(MANIFEST.read_text(encoding="utf-8"))["nodes"]


def mappings() -> tuple[dict[str, type], dict[str, str]]:
    """``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` for ComfyUI: the built-in node
    types and those of installed plugins."""
    import sys

    from .classes import build_classes
    from .plugins import plugin_declarations

    builtin = load_declarations()
    known = {d["id"] for d in builtin}
    plugins = []
    for declaration in plugin_declarations():
        if declaration["id"] in known:
            print(f"reelgraph: warning: plugin node type {declaration['id']!r} clashes with a built-in one; skipped",
                  file=sys.stderr)
            continue
        known.add(declaration["id"])
        plugins.append(declaration)
    return build_classes([*builtin, *plugins])
