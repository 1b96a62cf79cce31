"""ComfyUI node classes (the V1 class-attribute interface) made from node declarations.

V1 rather than V3 (``comfy_entrypoint``): the classes are generated from data, carry
``INPUT_IS_LIST``/``OUTPUT_IS_LIST`` exactly like reelgraph's list ports, pass ``widgetType``
through to the frontend unchanged, and need nothing from ComfyUI to be built or tested. Both
interfaces are supported by ComfyUI v0.26; a module exporting ``NODE_CLASS_MAPPINGS`` is read
the V1 way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .declare import (
    OUTPUT_NODE,
    OUTPUT_SOCKETS,
    RECIPE_NODE_DECLARATIONS,
    RESULT_NODE,
    class_inputs,
    class_name,
    display_name,
)


def _node_class(declaration: Mapping[str, Any]) -> type:
    type_id = declaration["id"]
    outputs = declaration["outputs"]
    inputs = class_inputs(declaration)

    def run(self: Any, unique_id: Any = None, **kwargs: Any) -> dict[str, Any]:
        from .runtime import execute  # the implementations load on first use, never at start

        return execute(declaration, kwargs, unique_id)

    attributes: dict[str, Any] = {
        "INPUT_TYPES": classmethod(lambda cls: inputs),
        "RETURN_TYPES": tuple(OUTPUT_SOCKETS[p["type"]] for p in outputs),
        "RETURN_NAMES": tuple(p["name"] for p in outputs),
        "OUTPUT_IS_LIST": tuple(bool(p.get("is_list")) for p in outputs),
        "OUTPUT_TOOLTIPS": tuple(p.get("description", "") for p in outputs),
        "INPUT_IS_LIST": any(p.get("is_list") for p in declaration["inputs"]),
        "FUNCTION": "run",
        "CATEGORY": f"reelgraph/{declaration['category']}",
        "DESCRIPTION": declaration.get("description", ""),
        "OUTPUT_NODE": type_id == OUTPUT_NODE,
        "NOT_IDEMPOTENT": not declaration.get("deterministic", True),
        "run": run,
        "__module__": __name__,
        "__doc__": declaration.get("description", ""),
    }
    if type_id in (OUTPUT_NODE, RESULT_NODE):
        # a "*" input passes ComfyUI's type check only when the node accepts the types itself
        attributes["VALIDATE_INPUTS"] = classmethod(lambda cls, input_types=None, **kw: True)
    return type(class_name(type_id).replace(".", "_"), (), attributes)


def build_classes(declarations: list[dict[str, Any]]) -> tuple[dict[str, type], dict[str, str]]:
    classes: dict[str, type] = {}
    names: dict[str, str] = {}
    for declaration in [*declarations, *RECIPE_NODE_DECLARATIONS]:
        key = class_name(declaration["id"])
        if key in classes:
            raise ValueError(f"node type {declaration['id']!r} clashes with the pack's recipe nodes")
        classes[key] = _node_class(declaration)
        names[key] = display_name(declaration)
    return classes, names
