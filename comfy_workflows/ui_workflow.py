"""The UI-format workflow that rides along with every prompt the pool submits.

ComfyUI writes ``extra_data.extra_pnginfo.workflow`` into the metadata of what it saves (PNG text
chunks, MP4 tags, VideoHelperSuite's first-frame PNG), so a clip made by reelgraph can be dropped
onto a ComfyUI canvas and shows the workflow that made it. There is one exporter: the API prompt
becomes a recipe of ``comfy:<class>`` nodes (``graphs.comfy_api``) and that recipe a laid-out UI
workflow (``graphs.comfy_ui``), with the instance's ``/object_info`` for widget order.
``reelgraph import`` reads such a file back as the same graph.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from .schema import ObjectInfo


def ui_workflow(prompt: Mapping[str, Any], info: ObjectInfo, model_files: Iterable[str] = ()) -> dict[str, Any]:
    """``prompt`` as a UI-format (0.4) workflow. ``model_files`` named in the provisioning manifest
    are listed under ``models`` (name, url, directory and, where the manifest has it, sha256), which
    the ComfyUI frontend offers to download when they are missing."""
    from ..graphs.comfy_api import (
        recipe_from_api,  # lazy: graphs pulls in the node pack declarations
    )
    from ..graphs.comfy_ui import recipe_to_ui

    workflow = recipe_to_ui(recipe_from_api(prompt), info, [])  # ComfyUI nodes only: no pack declarations
    models = [entry for name in model_files if (entry := _model_entry(name)) is not None]
    if models:
        workflow["models"] = models
    return workflow


def _model_entry(name: str) -> dict[str, Any] | None:
    model = _manifest().for_file(name)
    if model is None or not model.dir.startswith("models/"):
        return None  # e.g. RIFE weights live in the pack's folder, not a model directory
    entry: dict[str, Any] = {"name": model.file, "url": model.url, "directory": model.dir.removeprefix("models/")}
    if model.sha256:
        entry |= {"hash": model.sha256, "hash_type": "SHA256"}
    return entry


@functools.cache
def _manifest() -> Any:
    from .provision import load_manifest

    return load_manifest()
