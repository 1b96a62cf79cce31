"""Lossless conversion between ComfyUI API-format workflows and recipes (ComfyUI nodes only).

API format: ``{node_id: {"class_type": C, "inputs": {name: literal | [node_id, slot]}, "_meta": {...}}}``.
A recipe node keeps the class as ``comfy:C``, links by slot number, and every other per-node key
(``_meta`` and anything newer) under ``meta["comfy"]`` so that export gives back the same document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..nodes.registry import COMFY_TYPE_PREFIX, is_comfy_type
from ..nodes.types import ValueType
from .errors import GraphError, RecipeInvalid, json_path
from .model import Link, LiteralObject, NodeSpec, ParamRef, Recipe

# What a link to slot 0 of a known output node gives: (value type, one file per image of a batch).
SAVERS: dict[str, tuple[ValueType, bool]] = {
    "SaveImage": ("image", True),
    "PreviewImage": ("image", True),
    "SaveAnimatedWEBP": ("image", False),
    "SaveAnimatedPNG": ("image", False),
    "SaveVideo": ("video", False),
    "SaveWEBM": ("video", False),
    "VHS_VideoCombine": ("video", False),
    "SaveAudio": ("audio", False),
    "SaveAudioMP3": ("audio", False),
    "SaveAudioOpus": ("audio", False),
    "PreviewAudio": ("audio", False),
}
PREVIEWS = frozenset({"PreviewImage", "PreviewAudio"})  # shown in ComfyUI, not results


def with_saved_outputs(recipe: Recipe) -> Recipe:
    """A recipe without outputs (a plain ComfyUI workflow) gets one per node that saves files, as
    ComfyUI's own results: ``<title or class>_<node id>`` linked to slot 0 (what it saved)."""
    if recipe.outputs:
        return recipe
    outputs: dict[str, dict[str, Any]] = {}
    for node_id, spec in recipe.nodes.items():
        class_type = spec.type.removeprefix(COMFY_TYPE_PREFIX)
        if not is_comfy_type(spec.type) or class_type not in SAVERS or class_type in PREVIEWS:
            continue
        title = ((spec.meta.get("comfy") or {}).get("_meta") or {}).get("title")
        base = re.sub(r"[^a-z0-9]+", "_", str(title or class_type).lower()).strip("_") or "output"
        outputs[f"{base}_{node_id}"] = {"link": [node_id, 0]}
    if not outputs:
        return recipe
    return Recipe.model_validate({**recipe.model_dump(mode="json", exclude_unset=True), "outputs": outputs})


def _is_api_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def recipe_from_api(document: Mapping[str, Any], name: str | None = None) -> Recipe:
    """An API-format workflow (or a ``/prompt`` body holding one under ``prompt``) as a recipe."""
    if isinstance(document.get("prompt"), Mapping):
        document = document["prompt"]
    errors: list[GraphError] = []
    nodes: dict[str, NodeSpec] = {}
    for node_id, node in document.items():
        path = json_path(node_id)
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            errors.append(GraphError("bad_structure", path, "an API-format node needs a string 'class_type'", node_id))
            continue
        raw_inputs = node.get("inputs", {})
        if not isinstance(raw_inputs, Mapping):
            errors.append(GraphError("bad_structure", json_path(node_id, "inputs"), "'inputs' must be an object", node_id))
            continue
        inputs: dict[str, Any] = {}
        for input_name, value in raw_inputs.items():
            if _is_api_link(value):
                inputs[input_name] = Link(link=(value[0], value[1]))
            elif isinstance(value, Mapping):
                inputs[input_name] = LiteralObject(literal=value)
            else:
                inputs[input_name] = value
        extra = {key: value for key, value in node.items() if key not in ("class_type", "inputs")}
        nodes[str(node_id)] = NodeSpec(
            type=COMFY_TYPE_PREFIX + node["class_type"],
            inputs=inputs,
            meta={"comfy": extra} if extra else {},
        )
    if errors:
        raise RecipeInvalid(errors)
    return Recipe(name=name, nodes=nodes)


def recipe_to_api(recipe: Recipe, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The recipe as an API-format workflow; params are substituted. Only ComfyUI nodes can be exported."""
    values = {name: spec.default for name, spec in recipe.params.items() if not spec.required}
    values.update(params or {})
    errors: list[GraphError] = []
    document: dict[str, Any] = {}
    for node_id, spec in recipe.nodes.items():
        if not is_comfy_type(spec.type):
            errors.append(
                GraphError(
                    "bad_option",
                    json_path("nodes", node_id, "type"),
                    f"{spec.type!r} is a reelgraph node type; API-format export holds only ComfyUI nodes (comfy:...)",
                    node_id,
                )
            )
            continue
        inputs: dict[str, Any] = {}
        for input_name, value in spec.inputs.items():
            path = json_path("nodes", node_id, "inputs", input_name)
            if isinstance(value, Link):
                inputs[input_name] = [value.node, value.output]
            elif isinstance(value, ParamRef):
                if value.param not in values:
                    errors.append(GraphError("missing_param", path, f"parameter {value.param!r} has no value", node_id))
                    continue
                inputs[input_name] = values[value.param]
            elif isinstance(value, LiteralObject):
                inputs[input_name] = value.literal
            else:
                inputs[input_name] = value
            if not isinstance(value, Link) and _is_api_link(inputs[input_name]):
                errors.append(
                    GraphError("wrong_type", path, "this literal would read as a link in API format", node_id)
                )
        document[node_id] = {"inputs": inputs, "class_type": spec.type.removeprefix(COMFY_TYPE_PREFIX)}
        document[node_id].update(spec.meta.get("comfy", {}))
    if errors:
        raise RecipeInvalid(errors)
    return document
