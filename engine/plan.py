"""What a run would do, without running anything: cached, will run (and why), or waits on new output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..graphs.validate import BoundRecipe
from ..nodes.types import NodeFailure
from .expand import ExpandError, KeyContext, cached_result, expand
from .keys import why_dirty
from .records import RunRecords
from .runner import needed_nodes
from .store import ArtifactStore
from .values import PortValue, assemble_outputs


@dataclass(frozen=True)
class PlanEntry:
    node: str
    type: str
    element: int | None
    status: str  # cached | run | waits
    reason: str
    cache_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def plan(
    bound: BoundRecipe,
    store: ArtifactStore,
    records: RunRecords,
    outputs: tuple[str, ...] | None = None,
    force: frozenset[str] = frozenset(),
) -> list[PlanEntry]:
    """Walk the needed nodes in order. A node whose upstream must run first cannot be keyed yet:
    its key depends on bytes that do not exist, so it is reported as waiting on that node."""
    previous = records.last_key_docs(bound.recipe.name or "unnamed")
    key_context = KeyContext(store, bound.base_dir)
    known: dict[str, dict[str, PortValue]] = {}
    blocked_by: dict[str, str] = {}
    entries: list[PlanEntry] = []
    for node_id in needed_nodes(bound, outputs):
        node = bound.nodes[node_id]
        type_id = node.spec.type
        waiting_on = next((blocked_by.get(p, p) for p in bound.graph.predecessors(node_id) if p not in known), None)
        if waiting_on is not None:
            blocked_by[node_id] = waiting_on
            entries.append(PlanEntry(node_id, type_id, None, "waits", f"its key depends on the new output of {waiting_on!r}"))
            continue
        if node.node_type is None:
            entries.append(PlanEntry(node_id, type_id, None, "run", "ComfyUI node: runs on a ComfyUI backend"))
            continue
        try:
            works = expand(node, node.node_type, known, key_context)
        except (ExpandError, NodeFailure, OSError) as exc:
            entries.append(PlanEntry(node_id, type_id, None, "run", f"will fail: {exc}"))
            continue
        results: list[dict[str, Any] | None] = []
        for work in works:
            hit = None if node_id in force else cached_result(store, work)
            if hit is not None:
                entries.append(PlanEntry(node_id, type_id, work.element, "cached", "inputs unchanged", work.key))
            else:
                reason = "forced" if node_id in force else why_dirty(work.key_doc, previous.get((node_id, work.element)))
                entries.append(PlanEntry(node_id, type_id, work.element, "run", reason, work.key))
            results.append(hit.outputs if hit is not None else None)
        if all(result is not None for result in results):
            fanned = not works or works[0].element is not None
            known[node_id] = assemble_outputs(node.node_type.outputs, results, fanned)
    return entries
