"""Executing a reelgraph node inside ComfyUI: the same ``NodeType.run`` the engine calls.

Values in ComfyUI: scalars and json as Python values, files as absolute path strings of files in
ComfyUI's temp folder (``temp/reelgraph/...``), lists as lists. Each execution works in its own
folder there; its output files stay, since later nodes read them and the UI previews them.
"""

from __future__ import annotations

import functools
import importlib
import json
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .declare import (
    FILE_SOCKETS,
    OUTPUT_NODE,
    RESULT_NODE,
    UNSET,
    class_name,
    input_value,
    ordered_inputs,
    param_type_of,
)

PREVIEW_KINDS = {
    ".png": "images", ".jpg": "images", ".jpeg": "images", ".webp": "images", ".gif": "images",
    ".mp4": "video", ".webm": "video", ".mov": "video", ".mkv": "video",
    ".wav": "audio", ".mp3": "audio", ".flac": "audio", ".ogg": "audio", ".m4a": "audio", ".opus": "audio",
}


class ReelgraphNodeError(Exception):
    """An expected failure of a reelgraph node, shown by ComfyUI as the node's error."""


def temp_root() -> tuple[Path, str]:
    """ComfyUI's temp folder and the folder type the UI fetches previews with (``/view?type=``)."""
    try:
        import folder_paths  # ComfyUI's own module; absent when the pack is used outside ComfyUI

        return Path(folder_paths.get_temp_directory()), "temp"
    except ImportError:
        return Path(tempfile.gettempdir()) / "reelgraph-comfy", "temp"


def _progress_reporter(unique_id: Any) -> Any:
    try:
        import comfy.model_management as management
        import comfy.utils
    except ImportError:
        return None
    bar = comfy.utils.ProgressBar(1000, node_id=unique_id)

    def report(fraction: float, _message: str) -> None:
        management.throw_exception_if_processing_interrupted()  # ComfyUI's way to stop a node
        bar.update_absolute(int(fraction * 1000), 1000)

    return report


def _first(port: Mapping[str, Any], values: Any, listed: bool) -> Any:
    """Under INPUT_IS_LIST every input arrives as a list; a non-list port wants one value, and a
    list port gets the elements (or, from its own widget, one JSON text of the whole list)."""
    if not listed:
        return values
    if port.get("is_list"):
        if isinstance(values, list) and len(values) == 1 and isinstance(values[0], str):
            try:
                decoded = json.loads(values[0])
            except ValueError:
                return values
            return decoded if isinstance(decoded, list) else values
        return values
    if isinstance(values, list):
        if len(values) > 1:
            raise ReelgraphNodeError(
                f"input {port['name']!r} received {len(values)} values; inside ComfyUI a node with list inputs"
                " cannot also fan out over another input (run the recipe with reelgraph for that)"
            )
        return values[0] if values else None
    return values


def _value(port: Mapping[str, Any], raw: Any) -> Any:
    try:
        value = input_value(port, raw)
    except ValueError as exc:
        raise ReelgraphNodeError(f"input {port['name']!r} is not valid JSON: {exc}") from None
    if value is UNSET or value is None or (port.get("optional") and value == "" and port.get("default") is None):
        return port.get("default")
    return value


def _decode(port: Mapping[str, Any], value: Any) -> Any:
    if port["type"] not in FILE_SOCKETS or value is None:
        return value
    paths = value if port.get("is_list") else [value]
    missing = [str(p) for p in paths if not Path(str(p)).is_file()]
    if missing:
        raise ReelgraphNodeError(f"input {port['name']!r}: file {missing[0]} does not exist")
    return [Path(str(p)) for p in paths] if port.get("is_list") else Path(str(value))


def _preview(values: list[Any], root: Path, folder_type: str) -> dict[str, list[Any]]:
    """ComfyUI ``ui`` entries showing these values: images, video, audio, else text."""
    ui: dict[str, list[Any]] = {}
    for value in values:
        path = Path(value) if isinstance(value, (str, Path)) and len(str(value)) < 4096 else None
        kind = PREVIEW_KINDS.get(path.suffix.lower()) if path is not None else None
        if kind is not None and path is not None and path.is_file() and path.resolve().is_relative_to(root.resolve()):
            entry = {"filename": path.name, "subfolder": str(path.resolve().parent.relative_to(root.resolve())),
                     "type": folder_type}
            if kind == "video":
                ui.setdefault("images", []).append(entry)
                ui["animated"] = [True]
            else:
                ui.setdefault(kind, []).append(entry)
        else:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            ui.setdefault("text", []).append(text)
    return ui


def _output_value(port: Mapping[str, Any], value: Any) -> Any:
    if port["type"] in FILE_SOCKETS:
        if port.get("is_list"):
            return [str(Path(v).resolve()) for v in value]
        return str(Path(value).resolve())
    return value


@functools.cache
def _builtin_types() -> dict[str, Any]:
    from ..nodes.builtin import NODE_TYPES as BUILTIN_TYPES
    from ..nodes.pipeline import NODE_TYPES as PIPELINE_TYPES

    return {t.id: t for t in [*BUILTIN_TYPES, *PIPELINE_TYPES]}


def _node_type(declaration: Mapping[str, Any]) -> tuple[Any, ModuleType]:
    """The node type to run and the node API module it was written against. Built-ins come from
    this pack's own modules; a plugin's type is loaded (now, on first use) through the
    ``reelgraph`` package it imports, whose classes differ from the pack's when ComfyUI loaded
    the pack under a path-derived module name."""
    if not declaration.get("plugin"):
        from ..nodes import types

        return _builtin_types().get(declaration["id"]), types
    registry = importlib.import_module("reelgraph.nodes.registry")
    return registry.default_registry().get(declaration["id"]), importlib.import_module("reelgraph.nodes.types")


def _work_dir(root: Path, type_id: str) -> Path:
    work_dir = root / "reelgraph" / f"{type_id}-{uuid.uuid4().hex[:12]}"
    work_dir.mkdir(parents=True)
    return work_dir


def _finish(kwargs: Mapping[str, Any], root: Path, folder_type: str) -> dict[str, Any]:
    """The node that ends an expansion (``expansion.py``)."""
    from ..nodes.types import NodeContext, NodeFailure
    from .expansion import finish

    context = NodeContext(_work_dir(root, RESULT_NODE), RESULT_NODE, None)
    try:
        path, placement = finish(kwargs, context)
    except NodeFailure as exc:
        raise ReelgraphNodeError(str(exc)) from None
    value = str(path.resolve())
    return {"ui": _preview([value], root, folder_type), "result": (value, placement)}


def execute(declaration: Mapping[str, Any], kwargs: Mapping[str, Any], unique_id: Any) -> dict[str, Any]:
    type_id = declaration["id"]
    listed = any(p.get("is_list") for p in declaration["inputs"])
    root, folder_type = temp_root()
    if type_id == OUTPUT_NODE:
        value = kwargs.get("value")
        return {"ui": _preview(value if isinstance(value, list) else [value], root, folder_type), "result": ()}
    inputs = {p["name"]: _value(p, _first(p, kwargs.get(p["name"]), listed)) for p in declaration["inputs"]}
    if param_type_of(class_name(type_id)) is not None:
        return {"ui": {"text": [json.dumps(inputs["value"], ensure_ascii=False, default=str)]},
                "result": (inputs["value"],)}
    if type_id == RESULT_NODE:
        return _finish(kwargs, root, folder_type)
    node_type, api = _node_type(declaration)
    context_class, failure_class = api.NodeContext, api.NodeFailure
    if node_type is None:
        raise ReelgraphNodeError(f"node type {type_id!r} is not installed in this reelgraph")
    for port in ordered_inputs(declaration):
        value = inputs[port["name"]]
        items = value if port.get("is_list") and isinstance(value, list) else [value]
        if port["type"] not in FILE_SOCKETS and port["type"] != "json" and not all(
            (item is None and port.get("optional")) or api.value_matches(item, port["type"]) for item in items
        ):
            spec = node_type.input(port["name"])
            raise ReelgraphNodeError(f"input {port['name']!r} takes {api.type_label(spec) if spec else port['type']}, "
                                     f"got {value!r:.60}")
    arguments = {p["name"]: _decode(p, inputs[p["name"]]) for p in declaration["inputs"]}
    from ..comfy_workflows.placement import Deferred, InsideComfyUI
    from .expansion import ExpansionError, expand

    work_dir = _work_dir(root, type_id)
    # Built-in types placed on ComfyUI expand into stock nodes here (a plugin's types have no placement).
    comfy = None if declaration.get("plugin") else InsideComfyUI()
    context = context_class(work_dir, str(unique_id or type_id), None, _progress_reporter(unique_id), threading.Event(),
                            comfy)
    try:
        returned = node_type.run(context, **arguments)
    except Deferred as deferred:
        try:
            return expand(deferred, str(unique_id or type_id))
        except ExpansionError as exc:
            raise ReelgraphNodeError(f"{type_id}: {exc}") from None
    except failure_class as exc:
        raise ReelgraphNodeError(f"{type_id}: {exc}") from None
    results = tuple(_output_value(p, returned[p["name"]]) for p in declaration["outputs"])
    shown: list[Any] = []
    for port, value in zip(declaration["outputs"], results):
        shown.extend(value if port.get("is_list") else [value])
    return {"ui": _preview(shown, root, folder_type), "result": results}
