"""How runs look through the API: state per node and per element folded from the event log,
counts, timings, errors and output links."""

from __future__ import annotations

from typing import Any

from ..engine.cost import summary as cost_summary
from ..engine.values import ARTIFACT_KEY, FAILED, PortValue
from .store import RunRow, WebhookRow

COST_NOTE = (
    "USD at the prices in providers.toml: what providers reported they billed, else the node type's estimate;"
    " work reused from the cache costs 0 here (cost_saved: what it cost when it was made);"
    " cost_unpriced counts executions whose cost is unknown"
)
PLAN_COST_NOTE = (
    "estimated USD at the prices in providers.toml for the steps that will run; cached steps cost 0"
    " (cost_saved: what they cost when made); a waiting step's estimate is per execution, and"
    " cost_unpriced counts steps whose cost is unknown or waits on how many executions there will be"
)


def plan_cost(steps: list[dict[str, Any]]) -> dict[str, Any]:
    totals = cost_summary((s["status"], s.get("estimated_cost"), s.get("saved")) for s in steps)
    return {"cost": totals["total"], "cost_saved": totals["saved"], "cost_unpriced": totals["unpriced"],
            "cost_note": PLAN_COST_NOTE}


def describe(row: RunRow, node_events: list[dict[str, Any]], webhook: WebhookRow | None, with_nodes: bool = True) -> dict[str, Any]:
    """A run as the API shows it: status, per-node and per-element state, counts, timings, outputs."""
    elements = _fold(node_events)
    counts = {status: 0 for status in ("executed", "cached", "failed", "skipped", "running")}
    for state in elements.values():
        counts[state["status"]] = counts.get(state["status"], 0) + 1
    finished_work = counts["executed"] + counts["cached"]
    errors = [
        {"node": node, "element": element, "step": (s["error"] or {}).get("step"), "cause": (s["error"] or {}).get("cause")}
        for (node, element), s in sorted(elements.items(), key=_order) if s["status"] == "failed"
    ]
    if row.error:
        errors.append({"node": None, "element": None, **row.error})
    costs = cost_summary((s["status"], s["cost"], s["saved"]) for s in elements.values())
    view: dict[str, Any] = {
        "id": row.id,
        "status": row.status,
        "recipe_name": row.recipe_name,
        "template": row.template,
        "params": row.params,
        "outputs_requested": row.options.get("outputs"),
        "force": row.options.get("force") or [],
        "priority": row.options.get("priority", 0),
        "parent_run": row.parent,
        "attempts": row.attempts,
        "metadata": row.metadata,
        "submitted_at": row.submitted,
        "started_at": row.started,
        "finished_at": row.finished,
        "seconds": round(row.finished - row.started, 6) if row.finished and row.started else None,
        "counts": counts,
        "cache_hit_ratio": round(counts["cached"] / finished_work, 6) if finished_work else None,
        "cost": costs["total"],
        "cost_saved": costs["saved"],
        "cost_unpriced": costs["unpriced"],
        "cost_note": COST_NOTE,
        "errors": errors,
        "outputs": row.outputs,
        "webhook": None if not row.webhook_url else {
            "url": row.webhook_url,
            "state": webhook.state if webhook else "waiting",
            "attempts": webhook.attempts if webhook else 0,
            "last_error": webhook.last_error if webhook else None,
        },
        "links": {"self": f"/v1/runs/{row.id}", "events": f"/v1/runs/{row.id}/events"},
    }
    if with_nodes:
        view["nodes"] = _node_views(row, elements)
    return view


def summary(row: RunRow) -> dict[str, Any]:
    return {
        "id": row.id, "status": row.status, "recipe_name": row.recipe_name, "template": row.template,
        "parent_run": row.parent, "metadata": row.metadata, "submitted_at": row.submitted,
        "started_at": row.started, "finished_at": row.finished,
        "links": {"self": f"/v1/runs/{row.id}", "events": f"/v1/runs/{row.id}/events"},
    }


def _link(doc: Any) -> Any:
    if doc is FAILED:
        return None
    if isinstance(doc, dict) and ARTIFACT_KEY in doc:
        return {**doc, "url": f"/v1/artifacts/{doc[ARTIFACT_KEY]}"}
    return doc


def output_links(value: PortValue) -> Any:
    return [_link(doc) for doc in value.elements] if value.is_list else _link(value.elements[0])


def _order(item: tuple[tuple[str, int | None], Any]) -> tuple[str, int]:
    (node, element), _ = item
    return node, -1 if element is None else element


def _fold(events: list[dict[str, Any]]) -> dict[tuple[str, int | None], dict[str, Any]]:
    """State per (node, element) from its events, across attempts. A result that a later attempt
    found in the cache keeps the status of the attempt that executed it."""
    states: dict[tuple[str, int | None], dict[str, Any]] = {}
    for event in events:
        key = (event["node"], event.get("element"))
        previous = states.get(key)
        if event["event"] == "node_started":
            states[key] = {"status": "running", "seconds": 0.0, "error": None, "attempt": event.get("attempt"),
                           "cost": None, "saved": None}
            continue
        status = event.get("status", "executed")
        if previous is not None and previous["status"] == "executed" and status == "cached":
            continue
        states[key] = {"status": status, "seconds": event.get("seconds") or 0.0, "error": event.get("error"),
                       "attempt": event.get("attempt"), "cost": event.get("cost"), "saved": event.get("saved")}
    return states


_NODE_ORDER = ("running", "failed", "skipped", "executed", "cached")


def _node_views(row: RunRow, elements: dict[tuple[str, int | None], dict[str, Any]]) -> list[dict[str, Any]]:
    by_node: dict[str, list[dict[str, Any]]] = {}
    for (node, element), state in sorted(elements.items(), key=_order):
        by_node.setdefault(node, []).append({"element": element, **state})
    idle = "pending" if row.status in ("queued", "running") else "not_run"
    views = []
    for node_id, spec in (row.recipe.get("nodes") or {}).items():
        items = by_node.get(node_id, [])
        statuses = {item["status"] for item in items}
        status = next((s for s in _NODE_ORDER if s in statuses), idle)
        fanned = any(item["element"] is not None for item in items)
        views.append({
            "node": node_id,
            "type": spec.get("type") if isinstance(spec, dict) else None,
            "status": status,
            "seconds": round(sum(item["seconds"] for item in items), 6),
            "cost": _sum(item["cost"] for item in items),
            "saved": _sum(item["saved"] for item in items),
            "elements": items if fanned else [],
            "error": next((item["error"] for item in items if item["status"] == "failed"), None),
        })
    return views


def _sum(values: Any) -> float | None:
    """Sum of the known values; None when none is known."""
    known = [value for value in values if value is not None]
    return round(sum(known), 8) if known else None
