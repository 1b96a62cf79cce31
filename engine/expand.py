"""Turning one recipe node into its executions: input documents, fan-out and action keys.

Shared by the runner and the planner so that what ``plan`` predicts is what ``run`` does.
ComfyUI list semantics: an input that does not declare ``is_list`` and receives a list runs the
node once per element; an input that declares it receives the whole list (aggregation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..graphs.model import Link
from ..graphs.validate import BoundNode
from ..nodes.types import FILE_TYPES, NodeType, Port
from .canonical import digest_json
from .keys import action_key, key_document
from .store import ActionResult, ArtifactStore
from .values import FAILED, PortValue, ingest_file, normalize_literal


class ExpandError(Exception):
    """The node cannot be expanded (e.g. fanned inputs of different lengths)."""


@dataclass
class ElementWork:
    node: BoundNode
    node_type: NodeType
    element: int | None
    input_docs: dict[str, Any]
    key_doc: dict[str, Any]
    key: str
    blocked_by: str | None = None  # upstream node whose failure blocks this element


class KeyContext:
    """What keys need from outside the graph, gathered once per run: the bytes of file literals
    (paths in the recipe) and each node type's environment fingerprint (which may run a tool, and
    may change between runs of a long-lived process, e.g. a config edit under the API server)."""

    def __init__(self, store: ArtifactStore, base_dir: Path) -> None:
        self._store = store
        self._base = base_dir
        self._docs: dict[str, Any] = {}
        self._environments: dict[str, Mapping[str, Any]] = {}

    def environment(self, node_type: NodeType) -> Mapping[str, Any]:
        if node_type.id not in self._environments:
            self._environments[node_type.id] = dict(node_type.environment()) if node_type.environment else {}
        return self._environments[node_type.id]

    def doc(self, value: Any) -> Any:
        if value is None:
            return None
        path = str(value)
        if path not in self._docs:
            self._docs[path] = ingest_file(self._store, self._base / path, move=False)
        return self._docs[path]


def _literal_doc(port: Port, value: Any, context: KeyContext) -> Any:
    if port.type in FILE_TYPES:
        return [context.doc(v) for v in value] if port.is_list else context.doc(value)
    return normalize_literal(port, value)


def expand(
    node: BoundNode,
    node_type: NodeType,
    upstream: Mapping[str, Mapping[str, PortValue]],
    context: KeyContext,
    indices: Iterable[int] | None = None,
) -> list[ElementWork]:
    """The executions of ``node`` given its upstream outputs; raises ExpandError on bad fan-out.

    ``indices`` restricts a fanned node to those elements: the runner starts an element as soon as
    its own upstream elements are done, while other elements of a fanned input are still pending."""
    fixed: dict[str, tuple[Any, str]] = {}
    fanned: dict[str, PortValue] = {}
    blocked_by: str | None = None
    for port in node_type.inputs:
        value = node.inputs.get(port.name, port.default)
        if isinstance(value, Link):
            port_value = upstream[value.node][str(value.output)]
            if port.is_list:
                if port_value.failed:
                    blocked_by = value.node
                fixed[port.name] = (list(port_value.elements), port_value.whole_digest())
            elif port_value.is_list:
                fanned[port.name] = port_value
            else:
                if port_value.elements[0] is FAILED:
                    blocked_by = value.node
                fixed[port.name] = (port_value.elements[0], port_value.digest(0))
        else:
            doc = _literal_doc(port, value, context)
            fixed[port.name] = (doc, digest_json(doc))
    if not fanned:
        return [_work(node, node_type, None, fixed, {}, blocked_by, context)]
    lengths = {name: len(value.elements) for name, value in fanned.items()}
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{name!r} has {count}" for name, count in sorted(lengths.items()))
        raise ExpandError(f"list inputs must have the same length to fan out together: {sizes}")
    count = next(iter(lengths.values()))
    works = []
    for index in range(count) if indices is None else indices:
        picked = {name: (value.elements[index], value.digest(index)) for name, value in fanned.items()}
        element_blocked = blocked_by or next(
            (node.inputs[name].node for name, (doc, _) in picked.items() if doc is FAILED), None
        )
        works.append(_work(node, node_type, index, fixed, picked, element_blocked, context))
    return works


def _work(
    node: BoundNode,
    node_type: NodeType,
    element: int | None,
    fixed: Mapping[str, tuple[Any, str]],
    picked: Mapping[str, tuple[Any, str]],
    blocked_by: str | None,
    context: KeyContext,
) -> ElementWork:
    docs = {name: doc for name, (doc, _) in fixed.items()} | {name: doc for name, (doc, _) in picked.items()}
    digests = {name: digest for name, (_, digest) in fixed.items()} | {n: d for n, (_, d) in picked.items()}
    document = key_document(node_type, digests, node.spec.nonce, context.environment(node_type))
    return ElementWork(node, node_type, element, docs, document, action_key(document), blocked_by)


def cached_result(store: ArtifactStore, work: ElementWork) -> ActionResult | None:
    """The cached result of an execution, unless it lacks an output the type now declares (a type
    changed its outputs without bumping impl_version): that is a miss, not a crash downstream."""
    hit = store.get_action(work.key)
    if hit is None or any(port.name not in hit.outputs for port in work.node_type.outputs):
        return None
    return hit
