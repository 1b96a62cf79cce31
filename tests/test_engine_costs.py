"""The engine's cost bookkeeping: reported cost wins over the estimate, reuse costs nothing and says
what it saved, a broken cost model makes a cost unknown (never a failed run), plans price what
will run, and run records made before costs existed gain the columns."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from reelgraph.engine import Engine, RunOptions
from reelgraph.engine.records import Execution, RunRecords
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext, Port, node_type

CENTS_PER_CHARACTER = 0.01


def _estimate(values: dict[str, Any]) -> float | None:
    text = values.get("text")
    if text == "broken":
        raise RuntimeError("the price list is unreadable")
    return len(text) * CENTS_PER_CHARACTER if isinstance(text, str) else None


@node_type(
    "test.paid",
    inputs=[Port("text", "string")],
    outputs=[Port("text", "string")],
    estimate_cost=_estimate,
)
def paid(ctx: NodeContext, text: str) -> dict[str, Any]:
    """Reports what the 'provider' billed when the text starts with 'billed'; otherwise nothing."""
    if text.startswith("billed"):
        ctx.report_cost(1.5)
    return {"text": text.upper()}


def bound(tmp_path: Path, texts: str) -> Any:
    document = {
        "name": "paid",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": texts, "separator": ","}},
            "paid": {"type": "test.paid", "inputs": {"text": {"link": ["split", "items"]}}},
        },
        "outputs": {"out": {"link": ["paid", "text"]}},
    }
    return bind_recipe(parse_recipe(document), NodeRegistry([*BUILTIN_TYPES, paid]), base_dir=tmp_path)


def costs(executions: list[Execution], node: str = "paid") -> list[tuple[str, float | None, float | None]]:
    return [(e.status, e.cost, e.saved) for e in sorted(executions, key=lambda e: e.element or 0) if e.node == node]


def test_reported_cost_wins_and_reuse_costs_nothing(engine: Engine, tmp_path: Path) -> None:
    recipe = bound(tmp_path, "billed,abc")
    planned = [e for e in engine.plan(recipe) if e.node == "paid"]
    assert [e.status for e in planned] == ["waits"] and planned[0].estimated_cost is None  # text unknown yet

    first = engine.run(recipe, RunOptions())
    assert first.status == "succeeded"
    assert costs(first.executions) == [("executed", 1.5, None), ("executed", 0.03, None)]
    assert costs(first.executions, "split") == [("executed", 0.0, None)]  # no cost model: bills nothing
    assert costs(engine.records.executions(first.run_id)) == costs(first.executions)  # on disk too

    planned = [e for e in engine.plan(recipe, force=frozenset({"paid"})) if e.node == "paid"]
    assert [(e.status, e.estimated_cost) for e in planned] == [("run", 0.06), ("run", 0.03)]  # estimates
    planned = [e for e in engine.plan(recipe) if e.node == "paid"]
    assert [(e.status, e.estimated_cost, e.saved) for e in planned] == [("cached", 0.0, 1.5), ("cached", 0.0, 0.03)]

    again = engine.run(recipe, RunOptions())
    assert costs(again.executions) == [("cached", 0.0, 1.5), ("cached", 0.0, 0.03)]
    assert {e["cost"] for e in (x.report() for x in again.executions)} == {0.0}  # in `run --report` too


def test_a_broken_cost_model_makes_the_cost_unknown_not_the_run(engine: Engine, tmp_path: Path) -> None:
    result = engine.run(bound(tmp_path, "broken,fine"), RunOptions())
    assert result.status == "succeeded"
    assert costs(result.executions) == [("executed", None, None), ("executed", 0.04, None)]


def test_records_made_before_costs_existed_gain_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE runs (id TEXT PRIMARY KEY, recipe_name TEXT NOT NULL, recipe_digest TEXT NOT NULL,
            params TEXT NOT NULL, status TEXT NOT NULL, pid INTEGER, started REAL NOT NULL, finished REAL);
        CREATE TABLE executions (run_id TEXT NOT NULL REFERENCES runs(id), node TEXT NOT NULL, element INTEGER NOT NULL,
            type TEXT NOT NULL, status TEXT NOT NULL, cache_key TEXT, key_doc TEXT, seconds REAL NOT NULL, error TEXT,
            PRIMARY KEY (run_id, node, element));
        INSERT INTO runs VALUES ('old', 'r', 'd', '{}', 'succeeded', NULL, 1.0, 2.0);
        INSERT INTO executions VALUES ('old', 'n', -1, 't', 'executed', 'k', NULL, 0.5, NULL);
    """)
    old.close()
    records = RunRecords(path)
    try:
        assert costs(records.executions("old"), "n") == [("executed", None, None)]  # unknown, not zero
        records.start_run("new", "r", "d", {})
        records.record("new", [Execution("n", "t", None, "executed", "k", 0.1, cost=0.25)])
        assert costs(records.executions("new"), "n") == [("executed", 0.25, None)]
    finally:
        records.close()
