"""reelgraph: short AI videos from declarative recipe graphs.

This file is also what ComfyUI imports when the repository is cloned into ``custom_nodes/``
(under a module name made from its path), so it must stay cheap and use relative imports only.
The ComfyUI node mappings arrive with the visual-editing work; until then the pack registers none.
"""

__version__ = "0.1.0"

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
