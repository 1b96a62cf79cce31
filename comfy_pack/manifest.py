"""Writes ``manifest.json``: the declarations of the built-in node types, so that ComfyUI's start
never imports their implementations. ``tests/test_comfy_pack.py`` fails when it is stale.

Run: ``python -m reelgraph.comfy_pack.manifest``
"""

from __future__ import annotations

import json
from typing import Any

from . import MANIFEST
from .declare import declare_all


def current() -> dict[str, Any]:
    """The manifest the built-in node types give now (plugins are not part of the pack)."""
    from ..nodes.builtin import NODE_TYPES as BUILTIN_TYPES
    from ..nodes.pipeline import NODE_TYPES as PIPELINE_TYPES

    return {"generated_by": "python -m reelgraph.comfy_pack.manifest",
            "nodes": declare_all([*BUILTIN_TYPES, *PIPELINE_TYPES])}


def render(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    MANIFEST.write_text(render(current()), encoding="utf-8")
    print(f"wrote {MANIFEST}")


if __name__ == "__main__":
    main()
