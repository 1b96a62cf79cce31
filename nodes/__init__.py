"""Node types: the API (`types`), the registry with plugin entry points, and the built-ins."""

from .registry import NodeRegistry, default_registry
from .types import NodeContext, NodeFailure, NodeType, Port, node_type

__all__ = ["NodeContext", "NodeFailure", "NodeRegistry", "NodeType", "Port", "default_registry", "node_type"]
