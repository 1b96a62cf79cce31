"""Which node types exist: the built-ins plus third-party types from the ``reelgraph.nodes`` entry points."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from importlib.metadata import entry_points

from .types import NodeType

ENTRY_POINT_GROUP = "reelgraph.nodes"
# Graphs imported from ComfyUI keep their class_type behind this prefix; ComfyUI executes them.
COMFY_TYPE_PREFIX = "comfy:"


class NodeRegistry:
    def __init__(self, node_types: Iterable[NodeType] = ()) -> None:
        self._types: dict[str, NodeType] = {}
        self.load_errors: list[str] = []
        for node_type in node_types:
            self.register(node_type)

    def register(self, node_type: NodeType, source: str = "built-in") -> None:
        if node_type.id.startswith(COMFY_TYPE_PREFIX):
            raise ValueError(f"node type id {node_type.id!r} uses the reserved prefix {COMFY_TYPE_PREFIX!r}")
        if node_type.id in self._types and self._types[node_type.id] is not node_type:
            raise ValueError(f"node type {node_type.id!r} from {source} is already registered")
        self._types[node_type.id] = node_type

    def get(self, type_id: str) -> NodeType | None:
        return self._types.get(type_id)

    def ids(self) -> list[str]:
        return sorted(self._types)

    def load_entry_points(self) -> None:
        """Register every type a plugin publishes. A broken plugin is reported, never fatal."""
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                published = entry.load()
                types = [published] if isinstance(published, NodeType) else list(published)
                for node_type in types:
                    if not isinstance(node_type, NodeType):
                        raise TypeError(f"{node_type!r} is not a reelgraph NodeType")
                    self.register(node_type, source=f"plugin {entry.name!r}")
            except Exception as exc:  # a plugin's bug must not take the engine down
                message = f"node plugin {entry.name!r} ({entry.value}) failed to load: {exc}"
                self.load_errors.append(message)
                print(f"reelgraph: warning: {message}", file=sys.stderr)


def is_comfy_type(type_id: str) -> bool:
    return type_id.startswith(COMFY_TYPE_PREFIX)


_default: NodeRegistry | None = None


def default_registry() -> NodeRegistry:
    """Built-ins and installed plugins, loaded once per process."""
    global _default
    if _default is None:
        from .builtin import NODE_TYPES as BUILTIN_TYPES
        from .pipeline import NODE_TYPES as PIPELINE_TYPES

        registry = NodeRegistry([*BUILTIN_TYPES, *PIPELINE_TYPES])
        registry.load_entry_points()
        _default = registry
    return _default
