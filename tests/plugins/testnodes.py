"""Node types used by the tests. Published to subprocess CLIs through a real entry point (see conftest).

Every execution appends "node<TAB>element" to $REELGRAPH_TEST_LOG when it is set, so tests can
count executions independently of the engine's own report.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import Any

from reelgraph.nodes.types import NodeContext, NodeFailure, NodeType, Port, node_type


def log_execution(ctx: NodeContext) -> None:
    target = os.environ.get("REELGRAPH_TEST_LOG")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(f"{ctx.node_id}\t{'' if ctx.element is None else ctx.element}\n")


def short_hash(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


@node_type(
    "test.mix",
    inputs=[
        Port("salt", "string"),
        Port("a", "string", optional=True),
        Port("b", "string", optional=True),
        Port("c", "string", optional=True),
        Port("squash", "boolean", optional=True, default=False, description="ignore a, b, c (early cutoff)"),
    ],
    outputs=[Port("out", "string")],
)
def mix(ctx: NodeContext, salt: str, a: str | None, b: str | None, c: str | None, squash: bool) -> dict[str, Any]:
    """Deterministic function of its inputs; with squash, of the salt only."""
    log_execution(ctx)
    return {"out": "const-" + salt if squash else short_hash(salt, a, b, c)}


@node_type(
    "test.slow",
    inputs=[Port("text", "string"), Port("seconds", "number", optional=True, default=0.2)],
    outputs=[Port("text", "string")],
)
def slow(ctx: NodeContext, text: str, seconds: float) -> dict[str, Any]:
    """Sleeps, then echoes its text upper-cased; fails when the text contains 'boom'."""
    time.sleep(seconds)
    if "boom" in text:
        raise NodeFailure(f"refusing to process {text!r}")
    log_execution(ctx)
    return {"text": text.upper()}


@node_type(
    "test.count",
    inputs=[Port("items", "string", is_list=True)],
    outputs=[Port("count", "integer"), Port("joined", "string")],
)
def count(ctx: NodeContext, items: list[str]) -> dict[str, Any]:
    """Aggregates a list."""
    log_execution(ctx)
    return {"count": len(items), "joined": "|".join(items)}


@node_type(
    "test.random",
    inputs=[Port("prompt", "string")],
    outputs=[Port("text", "string")],
    deterministic=False,
)
def random_text(ctx: NodeContext, prompt: str) -> dict[str, Any]:
    """Non-deterministic, like an LLM call."""
    log_execution(ctx)
    return {"text": f"{prompt}:{uuid.uuid4().hex}"}


@node_type("test.nan", inputs=[Port("text", "string")], outputs=[Port("value", "json")])
def nan_value(ctx: NodeContext, text: str) -> dict[str, Any]:
    """Returns a value that cannot be hashed."""
    return {"value": {"x": float("nan")}}


@node_type("test.crash", inputs=[Port("text", "string")], outputs=[Port("text", "string")])
def crash(ctx: NodeContext, text: str) -> dict[str, Any]:
    """An implementation bug."""
    return {"text": text[1000]}


NODE_TYPES: list[NodeType] = [mix, slow, count, random_text, nan_value, crash]
