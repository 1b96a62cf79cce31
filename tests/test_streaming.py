"""Element-level hand-off: a fanned node's element starts as soon as its own upstream elements are
done (not when the whole upstream node is), and an execution may hand a child its result (prefill)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from reelgraph.engine import Engine, RunOptions
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext, NodeFailure, Port, node_type

WAIT = 20.0  # generous: the waits below end as soon as the other side acts


class Harness:
    """Node types whose executions coordinate through events, so ordering is asserted without timing."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.child_done = threading.Event()
        self.lock = threading.Lock()

    def count(self, ctx: NodeContext) -> None:
        with self.lock:
            self.calls[f"{ctx.node_id}[{ctx.element}]"] += 1

    def types(self) -> list[Any]:
        harness = self

        @node_type("t.produce", inputs=[Port("text", "string")], outputs=[Port("text", "string")])
        def produce(ctx: NodeContext, text: str) -> dict[str, Any]:
            harness.count(ctx)
            if text == "last" and not harness.child_done.wait(WAIT):
                raise NodeFailure("the first element's child never ran while this element was running")
            if text == "boom":
                raise NodeFailure("boom")
            return {"text": text.upper()}

        @node_type("t.consume", inputs=[Port("text", "string"), Port("suffix", "string", optional=True, default="!")],
                   outputs=[Port("text", "string")])
        def consume(ctx: NodeContext, text: str, suffix: str) -> dict[str, Any]:
            harness.count(ctx)
            harness.child_done.set()
            return {"text": text + suffix}

        @node_type("t.fused", inputs=[Port("text", "string")], outputs=[Port("text", "string")])
        def fused(ctx: NodeContext, text: str) -> dict[str, Any]:
            """Computes its t.consume child's result too, as one fused ComfyUI prompt would."""
            harness.count(ctx)
            for use in ctx.downstream:
                if use.node_type == "t.consume" and use.input == "text":
                    ctx.prefill(use, {"text": text.lower() + use.inputs["suffix"]})
            return {"text": text.lower()}

        return [produce, consume, fused]


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture
def run(engine: Engine, harness: Harness, tmp_path: Any):
    registry = NodeRegistry([*BUILTIN_TYPES, *harness.types()])

    def go(document: dict[str, Any], **options: Any):
        bound = bind_recipe(parse_recipe(document), registry, None, base_dir=tmp_path)
        return engine.run(bound, RunOptions(**options))

    return go


def chain(lines: str, first: str = "t.produce", suffix: Any = "!") -> dict[str, Any]:
    return {
        "reelgraph": 1,
        "name": "chain",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": lines}},
            "a": {"type": first, "inputs": {"text": {"link": ["split", "items"]}}},
            "b": {"type": "t.consume", "inputs": {"text": {"link": ["a", "text"]}, "suffix": suffix}},
            "all": {"type": "text.join", "inputs": {"items": {"link": ["b", "text"]}}},
        },
        "outputs": {"text": {"link": ["all", "text"]}},
    }


def statuses(result: Any) -> dict[str, str]:
    return {f"{e.node}[{e.element}]": e.status for e in result.executions}


def test_an_element_starts_when_its_own_upstream_element_is_done(run, harness):
    # a[1] ("last") only finishes once some b element has run: impossible if b waited for all of a
    result = run(chain("first\nlast"), workers=2)
    assert result.status == "succeeded", result.failures
    assert result.outputs["text"].elements[0] == "FIRST!\nLAST!"


def test_a_failed_element_skips_only_its_own_chain(run, harness):
    result = run(chain("one\nboom\nlast"), workers=3)
    seen = statuses(result)
    assert seen["a[1]"] == "failed" and seen["b[1]"] == "skipped"
    assert seen["b[0]"] == seen["b[2]"] == "executed"
    assert seen["all[None]"] == "skipped"  # an aggregate still waits for (and needs) every element


def test_streamed_rerun_is_fully_cached(run, harness):
    first = run(chain("first\nlast"), workers=2)
    assert first.status == "succeeded"
    again = run(chain("first\nlast"), workers=2)
    assert set(statuses(again).values()) == {"cached"}
    assert again.outputs["text"].elements == first.outputs["text"].elements


def test_a_child_result_handed_over_by_its_parent_is_used_without_running_the_child(run, harness):
    result = run(chain("Alpha\nBeta", first="t.fused"), workers=2)
    assert result.status == "succeeded", result.failures
    assert result.outputs["text"].elements[0] == "alpha!\nbeta!"
    assert statuses(result)["b[0]"] == "executed" and statuses(result)["b[1]"] == "executed"
    assert harness.calls["b[0]"] == harness.calls["b[1]"] == 0  # computed by a, never run itself
    again = run(chain("Alpha\nBeta", first="t.fused"), workers=2)
    assert set(statuses(again).values()) == {"cached"}


def test_a_handed_over_result_is_keyed_like_a_normal_run(run, harness, engine):
    fused = run(chain("Alpha", first="t.fused"), workers=1)
    # the same child inputs computed by the child itself hit the cache entry the prefill wrote
    plain = {
        "reelgraph": 1,
        "name": "plain",
        "nodes": {"b": {"type": "t.consume", "inputs": {"text": "alpha", "suffix": "!"}}},
        "outputs": {"text": {"link": ["b", "text"]}},
    }
    again = run(plain)
    assert statuses(again)["b[None]"] == "cached"
    assert again.outputs["text"].elements[0] == fused.outputs["text"].elements[0].split("\n")[0]


def test_no_hand_over_when_the_child_has_inputs_not_yet_known(run, harness):
    document = chain("Alpha", first="t.fused")
    # the suffix comes from a node downstream of a itself: unknown while a runs
    document["nodes"]["suffix"] = {"type": "t.produce", "inputs": {"text": {"link": ["a", "text"]}}}
    document["nodes"]["b"]["inputs"]["suffix"] = {"link": ["suffix", "text"]}
    result = run(document, workers=1)
    assert result.status == "succeeded", result.failures
    assert result.outputs["text"].elements[0] == "alphaALPHA"
    assert harness.calls["b[0]"] == 1


def test_reusing_results_of_changed_source_with_the_same_impl_version_warns(engine, tmp_path):
    @node_type("t.echo", inputs=[Port("text", "string")], outputs=[Port("text", "string")])
    def echo_v1(ctx: NodeContext, text: str) -> dict[str, Any]:
        return {"text": text}

    @node_type("t.echo", inputs=[Port("text", "string")], outputs=[Port("text", "string")])
    def echo_v2(ctx: NodeContext, text: str) -> dict[str, Any]:
        return {"text": text.strip()}  # changed behaviour, impl_version forgotten

    document = {"reelgraph": 1, "name": "echo", "nodes": {"e": {"type": "t.echo", "inputs": {"text": " x "}}},
                "outputs": {"text": {"link": ["e", "text"]}}}

    def run_with(node: Any) -> tuple[Any, list[dict[str, Any]]]:
        events: list[dict[str, Any]] = []
        bound = bind_recipe(parse_recipe(document), NodeRegistry([node]), None, base_dir=tmp_path)
        return engine.run(bound, RunOptions(on_event=events.append)), events

    run_with(echo_v1)
    same, quiet = run_with(echo_v1)
    assert not [e for e in quiet if e["event"] == "node_warning"]
    changed, events = run_with(echo_v2)
    assert statuses(changed)["e[None]"] == "cached"  # reused, not silently invalidated
    warnings = [e for e in events if e["event"] == "node_warning"]
    assert len(warnings) == 1 and "impl_version" in warnings[0]["message"] and warnings[0]["node"] == "e"


def test_children_outside_the_requested_outputs_are_not_streamed(run, harness):
    document = chain("first\nsecond")
    document["outputs"] = {"a": {"link": ["a", "text"]}, "text": {"link": ["all", "text"]}}
    result = run(document, workers=2, outputs=("a",))
    assert result.status == "succeeded", result.failures
    assert {e.node for e in result.executions} == {"split", "a"}
    assert result.outputs["a"].elements == ["FIRST", "SECOND"]
