"""Property-based tests: dirty sets on random DAGs, and validation that never crashes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelgraph.engine import Engine, RunOptions
from reelgraph.graphs.errors import RecipeInvalid
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.tests.helpers import TEMPLATES, executed
from reelgraph.tests.plugins.testnodes import NODE_TYPES as TEST_TYPES, short_hash

REGISTRY = NodeRegistry([*NODE_TYPES, *TEST_TYPES])
SLOTS = ("a", "b", "c")


@st.composite
def dags(draw: st.DrawFn) -> dict[str, Any]:
    """Random DAGs of test.mix nodes: each node links to up to three earlier nodes; some squash."""
    count = draw(st.integers(min_value=1, max_value=14))
    nodes = {}
    for index in range(count):
        parents = draw(st.lists(st.integers(0, index - 1), max_size=3, unique=True)) if index else []
        inputs: dict[str, Any] = {"salt": f"s{index}", "squash": draw(st.booleans())}
        for slot, parent in zip(SLOTS, parents):
            inputs[slot] = {"link": [f"n{parent}", "out"]}
        nodes[f"n{index}"] = {"type": "test.mix", "inputs": inputs}
    return {"name": "random", "nodes": nodes}


def model_values(document: dict[str, Any]) -> dict[str, str]:
    """What each test.mix node outputs, computed independently of the engine."""
    values: dict[str, str] = {}
    for node_id, node in document["nodes"].items():  # ids are in topological order
        inputs = node["inputs"]
        parent = {slot: values[inputs[slot]["link"][0]] if slot in inputs else None for slot in SLOTS}
        values[node_id] = "const-" + inputs["salt"] if inputs["squash"] else short_hash(inputs["salt"], *parent.values())
    return values


def model_inputs(document: dict[str, Any], values: dict[str, str]) -> dict[str, tuple]:
    result = {}
    for node_id, node in document["nodes"].items():
        inputs = node["inputs"]
        linked = tuple(values[inputs[s]["link"][0]] if s in inputs else None for s in SLOTS)
        result[node_id] = (inputs["salt"], inputs["squash"], linked)
    return result


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=dags(), data=st.data())
def test_executed_set_after_an_edit_is_the_changed_part_of_the_cone(document, data):
    with tempfile.TemporaryDirectory() as home:
        engine = Engine(Path(home))
        first = engine.run(bind_recipe(parse_recipe(document), REGISTRY), RunOptions(workers=3))
        assert first.status == "succeeded"
        assert len(executed(first)) == len(document["nodes"])

        edited_id = data.draw(st.sampled_from(sorted(document["nodes"])))
        edited = json.loads(json.dumps(document))
        edited["nodes"][edited_id]["inputs"]["salt"] += "-edited"
        second = engine.run(bind_recipe(parse_recipe(edited), REGISTRY), RunOptions(workers=3))
        engine.close()

    before = model_inputs(document, model_values(document))
    after = model_inputs(edited, model_values(edited))
    # exactly the nodes whose own inputs changed: the edited node and the part of its descendant
    # cone that early cutoff did not stop
    expected = {(node, None) for node in document["nodes"] if before[node] != after[node]}
    assert executed(second) == expected
    assert (edited_id, None) in expected
    assert {e.status for e in second.executions} <= {"executed", "cached"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
TEMPLATE = json.loads((TEMPLATES / "title-cards.json").read_text())


@st.composite
def mutated_templates(draw: st.DrawFn) -> Any:
    """The bundled template with random values written at random places."""
    document = json.loads(json.dumps(TEMPLATE))
    for _ in range(draw(st.integers(1, 4))):
        target: Any = document
        path = draw(st.lists(st.sampled_from(["nodes", "params", "outputs", "inputs", "card", "clip", "lines", "text",
                                              "link", "type", "default", "seconds", "0"]), min_size=1, max_size=4))
        for key in path[:-1]:
            if isinstance(target, dict) and key in target:
                target = target[key]
        if isinstance(target, dict):
            target[path[-1]] = draw(json_values)
    return document


@settings(max_examples=300, deadline=None)
@given(document=st.one_of(json_values, mutated_templates()), params=st.dictionaries(st.text(max_size=6), json_values, max_size=3))
def test_validation_only_ever_raises_validation_errors(document, params):
    try:
        recipe = parse_recipe(json.dumps(document))
        bind_recipe(recipe, REGISTRY, params)
    except RecipeInvalid as exc:
        assert exc.errors and all(error.message for error in exc.errors)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_arbitrary_text_is_refused_cleanly(text):
    try:
        parse_recipe(text)
    except RecipeInvalid as exc:
        assert exc.errors
