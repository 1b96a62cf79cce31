"""Cost of executions in USD, as the engine records and plans it.

One number per execution: what its implementation reported (``NodeContext.report_cost``, from a
provider's billed usage), else its node type's ``estimate_cost`` from the input values, else 0.0
for node types without a cost model (local work bills nothing). None means unknown: the cost model
could not price it. A cached execution costs 0.0 in the run that reuses it; ``saved`` is what it
cost when it was made. A cost model that raises never breaks a run or a plan: it is unknown.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..graphs.model import Link
from ..graphs.validate import BoundNode
from ..nodes.types import NodeContext, NodeType

log = logging.getLogger("reelgraph.engine")


def _usd(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return round(float(value), 8)


def estimate(node_type: NodeType, values: Mapping[str, Any]) -> float | None:
    """The node type's estimate for one execution with these input values (0.0 without a cost model)."""
    if node_type.estimate_cost is None:
        return 0.0
    try:
        return _usd(node_type.estimate_cost(values))
    except Exception as exc:  # e.g. an unreadable providers.toml: the cost is unknown, the work goes on
        log.debug("cost estimate of %s failed: %s", node_type.id, exc)
        return None


def spent(node_type: NodeType, context: NodeContext, values: Mapping[str, Any]) -> float | None:
    """What an execution that just ran cost: reported, else estimated."""
    reported = _usd(context.cost)
    return reported if reported is not None else estimate(node_type, values)


def settled(status: str, provenance: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """(cost in this run, cost saved) of an execution that settled with a result of this provenance:
    executed, it cost what its provenance says; reused (cached), nothing, and saved that."""
    if provenance is None:  # failed or skipped: no result
        return None, None
    cost = _usd(provenance.get("cost"))
    if status == "cached":
        return (0.0 if cost is not None else None), cost
    return cost, None


def known_values(node: BoundNode, node_type: NodeType) -> dict[str, Any]:
    """Input values known before upstream runs: literals and defaults (linked inputs are absent)."""
    values = {}
    for port in node_type.inputs:
        value = node.inputs.get(port.name, port.default)
        if not isinstance(value, Link):
            values[port.name] = value
    return values


def summary(costs: Iterable[tuple[str, float | None, float | None]]) -> dict[str, Any]:
    """Totals over (status, cost, saved) rows of a plan (run / waits / cached) or a run (executed /
    cached / failed / skipped): the priced total, what reuse saved, and how many executions that
    spend money could not be priced (failed ones are not priced at all)."""
    total = saved = 0.0
    unpriced = 0
    for status, cost, reused_cost in costs:
        if status == "cached":
            saved += reused_cost or 0.0
        elif status not in ("run", "waits", "executed"):
            continue
        elif cost is None or (status == "waits" and cost > 0):
            unpriced += 1  # a waiting node's cost is per execution, and their number is not known yet
        else:
            total += cost
    return {"total": round(total, 8), "saved": round(saved, 8), "unpriced": unpriced, "currency": "USD"}
