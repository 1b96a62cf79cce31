"""What a run would do, without running anything: cached, will run (and why), or waits on new output.

Each entry carries its estimated cost in USD (``engine/cost.py``): what a ``run`` entry will cost,
0.0 for a ``cached`` one (with ``saved``, what it cost when made), and for a ``waits`` entry the
cost of one execution from the inputs known so far (None when it depends on upstream output)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..graphs.validate import BoundRecipe
from ..nodes.types import NodeFailure
from .comfy_groups import fuse_comfy_groups
from .cost import estimate, known_values, settled
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
    estimated_cost: float | None = None  # USD; None: unknown
    saved: float | None = None  # cached: what the reused result cost when it was made

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
    fused = fuse_comfy_groups(bound, store)  # as the run does: one node per group of ComfyUI nodes
    bound, force = fused.bound, fused.force(force)
    previous = fused.previous(records.last_key_docs(bound.recipe.name or "unnamed"))
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
            cost = estimate(node.node_type, known_values(node, node.node_type)) if node.node_type else None
            entries.append(PlanEntry(node_id, type_id, None, "waits", f"its key depends on the new output of {waiting_on!r}",
                                     estimated_cost=cost))
            continue
        assert node.node_type is not None  # ComfyUI nodes are fused into groups above
        try:
            works = expand(node, node.node_type, known, key_context)
        except (ExpandError, NodeFailure, OSError) as exc:
            entries.append(PlanEntry(node_id, type_id, None, "run", f"will fail: {exc}"))
            continue
        results: list[dict[str, Any] | None] = []
        for work in works:
            hit = None if node_id in force else cached_result(store, work)
            if hit is not None:
                cost, saved = settled("cached", hit.provenance)
                entries.append(PlanEntry(node_id, type_id, work.element, "cached", "inputs unchanged", work.key, cost, saved))
            else:
                reason = "forced" if node_id in force else why_dirty(work.key_doc, previous.get((node_id, work.element)))
                cost = estimate(node.node_type, work.input_docs)
                entries.append(PlanEntry(node_id, type_id, work.element, "run", reason, work.key, cost))
            results.append(hit.outputs if hit is not None else None)
        if all(result is not None for result in results):
            fanned = not works or works[0].element is not None
            known[node_id] = assemble_outputs(node.node_type.outputs, results, fanned)
    return fused.member_entries(entries)
