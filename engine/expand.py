"""Turning one recipe node into its executions: input documents, fan-out and action keys.

Shared by the runner and the planner so that what ``plan`` predicts is what ``run`` does.
ComfyUI list semantics: an input that does not declare ``is_list`` and receives a list runs the
node once per element; an input that declares it receives the whole list (aggregation).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..graphs.model import Link
from ..graphs.validate import BoundNode
from ..nodes.types import FILE_TYPES, NodeFailure, NodeType, Port
from .canonical import canonical_json, digest_json
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
    (paths in the recipe), each node type's environment fingerprint (which may run a tool, and
    may change between runs of a long-lived process, e.g. a config edit under the API server),
    and the per-execution fingerprints (e.g. the files in a folder input)."""

    def __init__(self, store: ArtifactStore, base_dir: Path) -> None:
        self._store = store
        self._base = base_dir
        self._docs: dict[str, Any] = {}
        self._environments: dict[str, Mapping[str, Any]] = {}
        # Fingerprints by (type id, digest of the inputs the hook read), and the sets of inputs each
        # type's hook has read: memoising on what it read, not on every input, is what lets a
        # 20-scene fan-out over one folder (the query differs, the folder does not) scan it once.
        self._fingerprints: dict[tuple[str, str], dict[str, Any]] = {}
        self._fingerprint_reads: dict[str, set[frozenset[str]]] = {}

    def environment(self, node_type: NodeType) -> Mapping[str, Any]:
        if node_type.id not in self._environments:
            self._environments[node_type.id] = dict(node_type.environment()) if node_type.environment else {}
        return self._environments[node_type.id]

    def fingerprint(self, node_type: NodeType, input_docs: Mapping[str, Any]) -> dict[str, Any]:
        """The type's ``fingerprint`` hook applied to one execution's scalar inputs ({} without a hook).

        A failure (e.g. a folder that does not exist) is an ExpandError naming the cause, so the
        node fails with it rather than the run with a traceback."""
        if node_type.fingerprint is None:
            return {}
        scalars = {port.name: input_docs[port.name] for port in node_type.inputs if port.type not in FILE_TYPES}
        for names in self._fingerprint_reads.get(node_type.id, ()):
            known = self._fingerprints.get((node_type.id, _digest_of(scalars, names)))
            if known is not None:
                return known
        inputs = _ReadRecorder(scalars)
        try:
            facts = dict(node_type.fingerprint(inputs))
            canonical_json(facts)
        except NodeFailure as exc:  # an expected failure: its message names the input, as the node's would
            raise ExpandError(str(exc)) from None
        except Exception as exc:  # a hook's bug (or facts JSON cannot hold) fails its node, not the run
            raise ExpandError(f"fingerprint of the inputs failed: {type(exc).__name__}: {exc}") from exc
        names = frozenset(inputs.read)
        self._fingerprint_reads.setdefault(node_type.id, set()).add(names)
        self._fingerprints[(node_type.id, _digest_of(scalars, names))] = facts
        return facts

    def doc(self, value: Any) -> Any:
        if value is None:
            return None
        path = str(value)
        if path not in self._docs:
            self._docs[path] = ingest_file(self._store, self._base / path, move=False)
        return self._docs[path]


class _ReadRecorder(Mapping[str, Any]):
    """Input documents that note which of them were read (iterating reads them all)."""

    def __init__(self, docs: Mapping[str, Any]) -> None:
        self._docs = docs
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> Any:
        self.read.add(name)
        return self._docs[name]

    def __iter__(self) -> Iterator[str]:
        self.read.update(self._docs)
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)


def _digest_of(docs: Mapping[str, Any], names: frozenset[str]) -> str:
    return digest_json({name: docs.get(name) for name in names})


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
    # a blocked element never runs, so its folder (say) need not be scanned for its key
    facts = context.fingerprint(node_type, docs) if blocked_by is None else {}
    document = key_document(node_type, digests, node.spec.nonce, context.environment(node_type), facts)
    return ElementWork(node, node_type, element, docs, document, action_key(document), blocked_by)


def cached_result(store: ArtifactStore, work: ElementWork) -> ActionResult | None:
    """The cached result of an execution, unless it lacks an output the type now declares (a type
    changed its outputs without bumping impl_version): that is a miss, not a crash downstream."""
    hit = store.get_action(work.key)
    if hit is None or any(port.name not in hit.outputs for port in work.node_type.outputs):
        return None
    return hit
