"""Bundled templates as the API shows them: docs plus a JSON Schema of their parameters."""

from __future__ import annotations

import json
from typing import Any

from ..graphs.templates import template_names, template_path
from .errors import ApiError

_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


def params_schema(params: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of a params object (file-typed params are paths inside the server's input folder)."""
    properties: dict[str, Any] = {}
    required = []
    for name, spec in params.items():
        value_type = spec.get("type", "json")
        prop: dict[str, Any] = {"x-reelgraph-type": value_type}
        if value_type in _JSON_TYPES:
            prop["type"] = _JSON_TYPES[value_type]
        elif value_type != "json":
            prop.update(type="string", description="path relative to the server's input folder")
        if spec.get("description"):
            prop["description"] = spec["description"]
        if "default" in spec:
            prop["default"] = spec["default"]
        else:
            required.append(name)
        if spec.get("minimum") is not None:
            prop["minimum"] = spec["minimum"]
        if spec.get("maximum") is not None:
            prop["maximum"] = spec["maximum"]
        if spec.get("choices") is not None:
            prop["enum"] = spec["choices"]
        properties[name] = prop
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def load(name: str) -> dict[str, Any]:
    path = template_path(name)
    if path is None:
        raise ApiError(404, "not_found", f"no template {name!r} (templates: {', '.join(template_names())})")
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def info(name: str, full: bool = False) -> dict[str, Any]:
    document = load(name)
    params = document.get("params", {})
    view: dict[str, Any] = {"name": name, "description": document.get("description", ""), "params_schema": params_schema(params)}
    if full:
        view.update(params=params, outputs=list(document.get("outputs", {})), nodes=len(document.get("nodes", {})), recipe=document)
    return view


def all_templates() -> list[dict[str, Any]]:
    return [info(name) for name in template_names()]
