"""ComfyUI-placed nodes exported as subgraphs of the stock nodes they compile to.

``reelgraph export --format comfy-ui --expand-comfy`` writes each node that would run on ComfyUI
(video.i2v with a Wan/Hunyuan/Kling model, image.generate with SDXL/Flux, video.interpolate with
RIFE or core interpolation) as a subgraph instance. Its definition holds the stock ComfyUI nodes
the compiler emits for that node on the given ``/object_info`` (the same workflow
``reelgraph run`` submits), so the canvas shows, and ComfyUI validates, what will run. Values
that only exist at run time (the uploaded start image, a source clip's frame rate, per-scene text
from upstream nodes) are stand-ins.

The instance keeps the reelgraph node's interface: its sockets are the node's inputs and outputs,
so every link of the recipe stays, and ``properties.reelgraph.expanded`` keeps the node's own
widget values and a digest of the stock nodes. Import turns the instance back into the reelgraph
node (lossless, same cache keys). The stock nodes inside are what reelgraph compiles, never an
input: an instance whose stock nodes were edited is refused by name (unpack the subgraph on the
canvas to keep them as ComfyUI nodes instead).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from ..comfy_workflows.schema import ObjectInfo
from ..nodes.registry import is_comfy_type
from .errors import GraphError, RecipeInvalid
from .model import Link, LiteralObject, NodeSpec, ParamRef, Recipe

EXPANDED = "expanded"  # the key under an instance's properties.reelgraph
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20
# Upload roles of the compiled workflows and the stand-in file each gets when the input is linked.
UPLOAD_ROLES = {"image": ".png", "video": ".mp4"}


def canonical_digest(prompt: Mapping[str, Any]) -> str:
    """A digest of an API-format prompt's nodes (classes, literal inputs, and what each link
    comes from), independent of node ids and of how numbers are spelled, so that a workflow the
    frontend loaded and saved again keeps it (the frontend may renumber the nodes of a subgraph
    definition, and saves 7.0 as 7). Links to nodes outside the prompt are left out, as the
    frontend drops them."""
    memo: dict[str, str] = {}

    def signature(node_id: str, visiting: frozenset[str]) -> str:
        if node_id in memo:
            return memo[node_id]
        if node_id in visiting:
            return "cycle"
        node = prompt[node_id]
        inputs: dict[str, Any] = {}
        for name, value in (node.get("inputs") or {}).items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                if value[0] not in prompt:
                    continue
                value = ["@link", signature(value[0], visiting | {node_id}), value[1]]
            inputs[name] = _as_javascript(value)
        text = json.dumps({"class_type": node.get("class_type"), "inputs": inputs}, sort_keys=True, default=str)
        memo[node_id] = hashlib.sha256(text.encode()).hexdigest()
        return memo[node_id]

    nodes = sorted(signature(node_id, frozenset()) for node_id in prompt)
    return hashlib.sha256(json.dumps(nodes).encode()).hexdigest()


def _as_javascript(value: Any) -> Any:
    """A value as the frontend saves it again: JavaScript has one number type, so 7.0 comes back as 7."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_as_javascript(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_javascript(v) for k, v in value.items()}
    return value


def renumber_subgraphs(document: dict[str, Any]) -> None:
    """Give the nodes, links and groups of the subgraph definitions ids that no other graph of
    the workflow uses (the frontend would remap colliding ones on load, warning each time)."""
    next_node, next_link = document["last_node_id"] + 1, document["last_link_id"] + 1
    next_group = max((g["id"] for g in document["groups"]), default=0) + 1
    for subgraph in (document.get("definitions") or {}).get("subgraphs") or []:
        node_ids = {n["id"]: next_node + i for i, n in enumerate(subgraph["nodes"])}
        link_ids = {link["id"]: next_link + i for i, link in enumerate(subgraph["links"])}
        for node in subgraph["nodes"]:
            node["id"] = node_ids[node["id"]]
            for entry in node.get("inputs") or []:
                if entry.get("link") is not None:
                    entry["link"] = link_ids[entry["link"]]
            for entry in node.get("outputs") or []:
                if entry.get("links"):
                    entry["links"] = [link_ids[link] for link in entry["links"]]
        for link in subgraph["links"]:
            link["id"] = link_ids[link["id"]]
            link["origin_id"] = node_ids.get(link["origin_id"], link["origin_id"])
            link["target_id"] = node_ids.get(link["target_id"], link["target_id"])
        for group in subgraph["groups"]:
            group["id"], next_group = next_group, next_group + 1
        next_node += len(node_ids)
        next_link += len(link_ids)
        subgraph["state"].update(lastNodeId=next_node - 1, lastLinkId=next_link - 1, lastGroupId=next_group - 1)
    document["last_node_id"], document["last_link_id"] = next_node - 1, next_link - 1


def _literal_inputs(spec: NodeSpec, recipe: Recipe) -> dict[str, Any]:
    """The node's inputs as the compiler sees them at export: literals, parameters at their
    defaults; linked inputs are left to the compiler's stand-ins."""
    values: dict[str, Any] = {}
    for name, value in spec.inputs.items():
        if isinstance(value, Link):
            continue
        if isinstance(value, ParamRef):
            param = recipe.params.get(value.param)
            if param is None or param.required:
                continue
            values[name] = param.default
        else:
            values[name] = value.literal if isinstance(value, LiteralObject) else value
    return values


def compiled_workflow(node_id: str, spec: NodeSpec, recipe: Recipe, stock: ObjectInfo) -> dict[str, Any] | None:
    """The API-format workflow a node would send to ComfyUI (as compiled for ``stock``), or None
    for a node that runs locally. Raises RecipeInvalid naming the node when it cannot compile."""
    if is_comfy_type(spec.type):
        return None
    from ..comfy_workflows.errors import CompileError
    from ..comfy_workflows.placement import job_for_node
    from ..comfy_workflows.pool import BuildTarget
    from ..nodes.types import NodeFailure

    inputs = _literal_inputs(spec, recipe)
    where = f"nodes.{node_id}"
    try:
        job = job_for_node(spec.type, inputs, node_id)
        if job is None:
            return None
        uploads = {role: PurePosixPath(str(inputs[role])).name if isinstance(inputs.get(role), str) and inputs[role]
                   else f"{node_id}{suffix}" for role, suffix in UPLOAD_ROLES.items()}
        compiled = job.build(BuildTarget(stock, "object_info", uploads, f"reelgraph/{node_id}"))
    except (CompileError, NodeFailure) as exc:
        raise RecipeInvalid([GraphError("bad_option", where, f"node {node_id} ({spec.type}) cannot be expanded into "
                                                             f"ComfyUI nodes: {exc}", node_id)]) from None
    return compiled.prompt


def _stable_uuid(*parts: str) -> str:
    return str(uuid.UUID(hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]))


def definition(node_id: str, spec: NodeSpec, inner_ui: Mapping[str, Any], inputs: list[Mapping[str, Any]],
               outputs: list[Mapping[str, Any]], digest: str) -> dict[str, Any]:
    """A subgraph definition (schema 1) holding the stock nodes of ``inner_ui`` (a UI workflow of
    the compiled prompt), with the reelgraph node's sockets as its inputs and outputs. The
    sockets connect to nothing inside: the stock nodes take their files and values as widgets."""
    identity = _stable_uuid("reelgraph-expanded", node_id, digest)
    nodes = list(inner_ui["nodes"])
    left = min((n["pos"][0] for n in nodes), default=0.0)
    right = max((n["pos"][0] + n["size"][0] for n in nodes), default=0.0)
    top = min((n["pos"][1] for n in nodes), default=0.0)
    model = spec.inputs.get("model", spec.inputs.get("method"))
    label = f" ({model})" if isinstance(model, str) else ""
    return {
        "id": identity,
        "version": 1,
        "revision": 0,
        "name": f"{node_id}: {spec.type}{label} on ComfyUI",
        "state": {"lastGroupId": len(inner_ui["groups"]), "lastNodeId": inner_ui["last_node_id"],
                  "lastLinkId": inner_ui["last_link_id"], "lastRerouteId": 0},
        "config": {},
        "inputNode": {"id": SUBGRAPH_INPUT, "bounding": [left - 260, top, 160, 40 + 20 * len(inputs)]},
        "outputNode": {"id": SUBGRAPH_OUTPUT, "bounding": [right + 100, top, 160, 40 + 20 * len(outputs)]},
        "inputs": [{"id": _stable_uuid(identity, "in", str(entry["name"])), "name": entry["name"], "type": entry["type"],
                    "linkIds": [], "localized_name": entry["name"]} for entry in inputs],
        "outputs": [{"id": _stable_uuid(identity, "out", str(entry["name"])), "name": entry["name"],
                     "type": entry["type"], "linkIds": [], "localized_name": entry["name"]} for entry in outputs],
        "widgets": [],
        "nodes": nodes,
        "links": [{"id": link_id, "origin_id": origin, "origin_slot": origin_slot, "target_id": target,
                   "target_slot": target_slot, "type": kind}
                  for link_id, origin, origin_slot, target, target_slot, kind in inner_ui["links"]],
        "groups": inner_ui["groups"],
        "extra": {"reelgraph": {"node": node_id, "type": spec.type,
                                "note": "the stock nodes reelgraph compiles for this node; inputs that come from "
                                        "other nodes at run time (start image, frame rate, text) are stand-ins"}},
    }
