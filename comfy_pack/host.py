"""What the pack reads from the ComfyUI process it runs in: the node schemas (``/object_info``
without HTTP), the input folder, the version, and ComfyUI's id prefix for expanded graphs.

Each function imports ComfyUI's own modules when called, never at import, and says plainly when
it is not inside ComfyUI.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..comfy_workflows.schema import ObjectInfo


class NotInComfyUI(RuntimeError):
    """A ComfyUI module the pack needs is absent: the code runs outside ComfyUI."""


def _comfy_module(name: str) -> Any:
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as exc:
        raise NotInComfyUI(f"ComfyUI's module {name!r} is not importable: {exc}") from None


def node_info(name: str, cls: type, display_names: Mapping[str, str]) -> dict[str, Any]:
    """One class's ``/object_info`` entry, as ComfyUI's server computes it: V3 classes describe
    themselves (``GET_NODE_INFO_V1``), V1 classes through their attributes."""
    describe = getattr(cls, "GET_NODE_INFO_V1", None)
    if callable(describe):
        return describe()
    inputs = cls.INPUT_TYPES()  # type: ignore[attr-defined]
    outputs = ["*" if value == [] else value for value in cls.RETURN_TYPES]  # type: ignore[attr-defined]
    return {
        "input": inputs,
        "input_order": {section: list(entries) for section, entries in inputs.items()},
        "is_input_list": getattr(cls, "INPUT_IS_LIST", False),
        "output": outputs,
        "output_is_list": getattr(cls, "OUTPUT_IS_LIST", [False] * len(outputs)),
        "output_name": getattr(cls, "RETURN_NAMES", outputs),
        "name": name,
        "display_name": display_names.get(name, name),
        "description": getattr(cls, "DESCRIPTION", ""),
        "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": getattr(cls, "OUTPUT_NODE", False) is True,
    }


def object_info() -> ObjectInfo:
    """The schemas of every node class of this ComfyUI, with the model files it has now (the
    loaders' combos list them). A class whose schema fails is left out, as ``/object_info`` does."""
    nodes = _comfy_module("nodes")
    folder_paths = _comfy_module("folder_paths")
    display_names = getattr(nodes, "NODE_DISPLAY_NAME_MAPPINGS", {})
    entries: dict[str, Any] = {}
    caching = getattr(folder_paths, "cache_helper", None) or contextlib.nullcontext()
    with caching:
        for name, cls in nodes.NODE_CLASS_MAPPINGS.items():
            try:
                entries[name] = json.loads(json.dumps(node_info(name, cls, display_names), default=str))
            except Exception:  # noqa: BLE001 - one broken class must not hide the others
                continue
    return ObjectInfo(entries)


def stage_input(path: Path) -> str:
    """Put a file in ComfyUI's input folder (under ``reelgraph/``, named by its content, so the
    same file is staged once) and return the name its loader nodes take."""
    folder_paths = _comfy_module("folder_paths")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
    folder = Path(folder_paths.get_input_directory()) / "reelgraph"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{digest}{path.suffix.lower()}"
    if not target.exists():
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copyfile(path, partial)
        partial.replace(target)
    return f"reelgraph/{target.name}"


def comfyui_version() -> str:
    try:
        return str(_comfy_module("comfyui_version").__version__)
    except (NotInComfyUI, AttributeError):
        return "unknown"


def graph_prefix(unique_id: str) -> str:
    """The id prefix of a node's expanded graph. ComfyUI's ``GraphBuilder`` knows the executing
    node and its call index (a node mapped over a list expands once per element), which keeps the
    ids unique and the same from run to run, so its cache holds."""
    try:
        graph_utils = _comfy_module("comfy_execution.graph_utils")
    except NotInComfyUI:
        return f"{unique_id}.0.0."
    return str(graph_utils.GraphBuilder.alloc_prefix())
