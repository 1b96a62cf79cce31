"""reelgraph: short AI videos from declarative recipe graphs.

This file is also what ComfyUI imports when the repository is cloned into ``custom_nodes/``
(under a module name made from its path), so it must stay cheap and use relative imports only.
The node mappings are built on first access (ComfyUI reads them right after the import); that
reads ``comfy_pack/manifest.json`` and imports no node implementation.
"""

from typing import Any

__version__ = "0.1.0"

_PACK_NAMES = ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS")


def __getattr__(name: str) -> Any:
    if name in _PACK_NAMES:
        from .comfy_pack import mappings

        classes, display = mappings()
        globals().update(NODE_CLASS_MAPPINGS=classes, NODE_DISPLAY_NAME_MAPPINGS=display)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
