"""Cheap, pure-Python node types for the engine benchmarks (no ffmpeg, no files).

They are published to ``reelgraph`` subprocesses through a fake ``reelgraph.nodes`` entry point
(see ``run_benchmarks.py``), so ``NODE_TYPES`` must stay importable as
``reelgraph.tests.bench.bench_nodes`` (or ``tests.bench.bench_nodes`` from the checkout).
Every function does a tiny, deterministic amount of work (one short SHA-256), so that what the
benchmarks measure is the engine around the nodes, not the nodes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from reelgraph.nodes.types import NodeContext, NodeType, Port, node_type


def _mix(*parts: Any) -> str:
    text = "|".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@node_type(
    "bench.source",
    category="bench",
    inputs=[Port("text", "string"), Port("k", "integer", optional=True, default=0)],
    outputs=[Port("out", "string")],
)
def bench_source(ctx: NodeContext, text: str, k: int) -> dict[str, Any]:
    """A root node: hashes its literal text."""
    return {"out": _mix(text, k)}


@node_type(
    "bench.mix",
    category="bench",
    inputs=[
        Port("a", "string"),
        Port("b", "string", optional=True),
        Port("c", "string", optional=True),
        Port("salt", "string", optional=True, default=""),
        Port("k", "integer", optional=True, default=0),
    ],
    outputs=[Port("out", "string")],
)
def bench_mix(ctx: NodeContext, a: str, b: str | None, c: str | None, salt: str, k: int) -> dict[str, Any]:
    """Hash of its one to three string inputs and its small literal params."""
    return {"out": _mix(a, b, c, salt, k)}


@node_type(
    "bench.scenes",
    category="bench",
    inputs=[Port("scenes", "string", is_list=True)],
    outputs=[Port("items", "string", is_list=True)],
)
def bench_scenes(ctx: NodeContext, scenes: list[str]) -> dict[str, Any]:
    """Takes the script's scene texts and emits one list element per scene (downstream fans out)."""
    return {"items": [scene.strip() for scene in scenes]}


@node_type(
    "bench.step",
    category="bench",
    inputs=[Port("text", "string"), Port("stage", "string", optional=True, default="")],
    outputs=[Port("out", "string")],
)
def bench_step(ctx: NodeContext, text: str, stage: str) -> dict[str, Any]:
    """One per-scene stage (e.g. prompt -> image -> clip), here a hash."""
    return {"out": f"{stage}:{_mix(text, stage)}"}


@node_type(
    "bench.gather",
    category="bench",
    inputs=[Port("parts", "string", is_list=True)],
    outputs=[Port("out", "string")],
)
def bench_gather(ctx: NodeContext, parts: list[str]) -> dict[str, Any]:
    """Aggregates the whole list (like a concat of the clips)."""
    return {"out": _mix(*parts)}


NODE_TYPES: list[NodeType] = [bench_source, bench_mix, bench_scenes, bench_step, bench_gather]
