"""Engine behaviour in-process: caching, early cutoff, fan-out, keep-going, single-flight, force."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reelgraph.engine import Engine, RunOptions
from reelgraph.engine.gc import collect_garbage
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.tests.helpers import executed, logged
from reelgraph.tests.plugins import testnodes


def chain(salt_a: str = "a", squash_b: bool = False) -> dict:
    return {
        "name": "chain",
        "nodes": {
            "a": {"type": "test.mix", "inputs": {"salt": salt_a}},
            "b": {"type": "test.mix", "inputs": {"salt": "b", "a": {"link": ["a", "out"]}, "squash": squash_b}},
            "c": {"type": "test.mix", "inputs": {"salt": "c", "a": {"link": ["b", "out"]}}},
            "unrelated": {"type": "test.mix", "inputs": {"salt": "u"}},
        },
        "outputs": {"c": {"link": ["c", "out"]}},
    }


def test_second_run_executes_nothing_and_gives_same_outputs(run_recipe):
    first = run_recipe(chain())
    assert executed(first) == {("a", None), ("b", None), ("c", None)}
    second = run_recipe(chain())
    assert executed(second) == set()
    assert {e.status for e in second.executions} == {"cached"}
    assert second.outputs["c"].elements == first.outputs["c"].elements


def test_only_ancestors_of_requested_outputs_run(run_recipe):
    result = run_recipe(chain())
    assert "unrelated" not in {e.node for e in result.executions}


def test_edit_reruns_descendants_and_early_cutoff_stops_identical_outputs(run_recipe):
    run_recipe(chain(squash_b=True))
    # b ignores its input when squashed: a reruns, b reruns with identical output, c stays cached
    edited = run_recipe(chain(salt_a="a2", squash_b=True))
    assert executed(edited) == {("a", None), ("b", None)}
    assert next(e for e in edited.executions if e.node == "c").status == "cached"


def test_node_ids_do_not_enter_keys(run_recipe):
    run_recipe(chain())
    renamed = chain()
    renamed["nodes"]["a_renamed"] = renamed["nodes"].pop("a")
    renamed["nodes"]["b"]["inputs"]["a"] = {"link": ["a_renamed", "out"]}
    assert executed(run_recipe(renamed)) == set()


def test_impl_version_bump_reruns_node_and_only_changed_descendants(tmp_path: Path):
    engine = Engine(tmp_path / "home")

    def run_with(mix_type):
        registry = NodeRegistry([mix_type, testnodes.count])
        return engine.run(bind_recipe(parse_recipe(chain()), registry), RunOptions())

    run_with(testnodes.mix)
    # every node of the bumped type re-keys
    assert executed(run_with(dataclasses.replace(testnodes.mix, impl_version="2"))) == {
        ("a", None), ("b", None), ("c", None)
    }

    # a descendant of another type reruns only if the bumped node's output changed
    def fan(count_type, mix_type):
        registry = NodeRegistry([mix_type, count_type])
        document = {
            "name": "agg",
            "nodes": {
                "a": {"type": "test.mix", "inputs": {"salt": "x"}},
                "n": {"type": "test.count", "inputs": {"items": {"link": ["a", "out"]}}},
                "after": {"type": "test.mix", "inputs": {"salt": "z", "a": {"link": ["n", "joined"]}}},
            },
        }
        return engine.run(bind_recipe(parse_recipe(document), registry), RunOptions())

    fan(testnodes.count, testnodes.mix)
    result = fan(dataclasses.replace(testnodes.count, impl_version="9"), testnodes.mix)
    assert executed(result) == {("n", None)}  # same joined output: 'after' keeps its cached result
    engine.close()


def test_fan_out_runs_once_per_element_and_aggregates(run_recipe):
    document = {
        "name": "fan",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": "x,y,z", "separator": ","}},
            "slow": {"type": "test.slow", "inputs": {"text": {"link": ["split", "items"]}, "seconds": 0}},
            "count": {"type": "test.count", "inputs": {"items": {"link": ["slow", "text"]}}},
        },
        "outputs": {"count": {"link": ["count", "count"]}, "joined": {"link": ["count", "joined"]}, "each": {"link": ["slow", "text"]}},
    }
    result = run_recipe(document)
    assert executed(result) == {("split", None), ("slow", 0), ("slow", 1), ("slow", 2), ("count", None)}
    assert result.outputs["count"].elements == [3]
    assert result.outputs["joined"].elements == ["X|Y|Z"]
    assert result.outputs["each"].is_list and result.outputs["each"].elements == ["X", "Y", "Z"]


def test_failed_element_keeps_others_going(run_recipe, tmp_path):
    document = {
        "name": "keepgoing",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": "ok1,boom,ok2", "separator": ","}},
            "slow": {"type": "test.slow", "inputs": {"text": {"link": ["split", "items"]}, "seconds": 0}},
            "count": {"type": "test.count", "inputs": {"items": {"link": ["slow", "text"]}}},
            "side": {"type": "test.mix", "inputs": {"salt": "independent"}},
        },
        "outputs": {"count": {"link": ["count", "count"]}, "side": {"link": ["side", "out"]}},
    }
    result = run_recipe(document)
    assert result.status == "failed"
    by_key = {(e.node, e.element): e for e in result.executions}
    assert by_key[("slow", 0)].status == "executed" and by_key[("slow", 2)].status == "executed"
    failure = by_key[("slow", 1)]
    assert failure.status == "failed"
    assert failure.error == {"node": "slow", "step": "execute", "cause": "refusing to process 'boom'"}
    assert by_key[("count", None)].status == "skipped"
    assert "'slow' failed" in by_key[("count", None)].error["cause"]
    assert by_key[("side", None)].status == "executed"
    # the elements that succeeded are cached for the next attempt
    again = run_recipe(document)
    assert executed(again) == set()
    assert [e.status for e in again.executions if e.node == "slow" and e.element == 1] == ["failed"]


def test_identical_work_in_flight_runs_once(run_recipe, tmp_path, monkeypatch):
    log = tmp_path / "log"
    monkeypatch.setenv("REELGRAPH_TEST_LOG", str(log))
    document = {
        "name": "dupes",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": "same,same,other,same", "separator": ","}},
            "slow": {"type": "test.slow", "inputs": {"text": {"link": ["split", "items"]}, "seconds": 0.3}},
        },
        "outputs": {"out": {"link": ["slow", "text"]}},
    }
    result = run_recipe(document, workers=4)
    assert sorted(e for e in logged(log) if e[0] == "slow") != []
    assert len([e for e in logged(log) if e[0] == "slow"]) == 2  # 'same' once, 'other' once
    statuses = sorted(e.status for e in result.executions if e.node == "slow")
    assert statuses == ["cached", "cached", "executed", "executed"]
    assert result.outputs["out"].elements == ["SAME", "SAME", "OTHER", "SAME"]


def test_force_reexecutes_but_identical_output_keeps_downstream_cached(run_recipe):
    run_recipe(chain())
    result = run_recipe(chain(), force=frozenset({"b"}))
    assert executed(result) == {("b", None)}


def test_resource_limit_bounds_concurrency(run_recipe, tmp_path, monkeypatch):
    import threading

    active = {"now": 0, "max": 0}
    lock = threading.Lock()
    original = testnodes.slow.run

    def tracking(ctx, **kwargs):
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        try:
            return original(ctx, **kwargs)
        finally:
            with lock:
                active["now"] -= 1

    limited = dataclasses.replace(testnodes.slow, run=tracking, resources={"gpu": 1})
    registry = NodeRegistry([limited, *[t for t in testnodes.NODE_TYPES if t.id != "test.slow"]])
    from reelgraph.nodes.builtin import NODE_TYPES

    for node_type in NODE_TYPES:
        registry.register(node_type)
    engine = Engine(tmp_path / "limits")
    document = {
        "name": "limited",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": "a,b,c,d", "separator": ","}},
            "slow": {"type": "test.slow", "inputs": {"text": {"link": ["split", "items"]}, "seconds": 0.1}},
        },
        "outputs": {"out": {"link": ["slow", "text"]}},
    }
    engine.run(bind_recipe(parse_recipe(document), registry), RunOptions(workers=4, limits={"gpu": 1}))
    assert active["max"] == 1
    engine.close()


def test_unhashable_output_fails_the_node_with_a_clear_cause(run_recipe):
    document = {"name": "nan", "nodes": {"n": {"type": "test.nan", "inputs": {"text": "x"}}}}
    result = run_recipe(document)
    (failure,) = result.failures
    assert failure.error["step"] == "store outputs"
    assert "cannot be hashed" in failure.error["cause"]


def test_implementation_bug_is_reported_with_step_and_location(run_recipe):
    result = run_recipe({"name": "crash", "nodes": {"n": {"type": "test.crash", "inputs": {"text": "x"}}}})
    (failure,) = result.failures
    assert failure.error["step"] == "execute"
    assert failure.error["cause"].startswith("IndexError: string index out of range (at testnodes.py:")


def test_missing_blob_turns_a_hit_into_a_rerun_not_a_broken_output(run_recipe, engine):
    document = {
        "name": "card",
        "nodes": {"card": {"type": "image.title_card", "inputs": {"text": "hi", "width": 64, "height": 64}}},
        "outputs": {"image": {"link": ["card", "image"]}},
    }
    first = run_recipe(document)
    digest = first.outputs["image"].elements[0]["$artifact"]
    engine.store.delete_blob(digest)
    second = run_recipe(document)
    assert executed(second) == {("card", None)}
    assert engine.store.has_blob(digest)


def test_gc_keeps_recent_runs_and_collects_the_rest(run_recipe, engine):
    run_recipe(chain())
    kept = collect_garbage(engine.store, engine.records, keep_runs=1, grace_seconds=0)
    assert kept.actions_removed == 0 and kept.actions_kept == 3
    gone = collect_garbage(engine.store, engine.records, keep_runs=0, grace_seconds=0)
    assert gone.actions_removed == 3
    assert executed(run_recipe(chain())) == {("a", None), ("b", None), ("c", None)}


def test_file_literal_is_keyed_by_content(run_recipe, tmp_path):
    from PIL import Image

    image_path = tmp_path / "in.png"
    Image.new("RGB", (32, 32), "red").save(image_path)
    document = {
        "name": "still",
        "nodes": {"clip": {"type": "video.still", "inputs": {"image": "in.png", "seconds": 0.2, "fps": 10}}},
        "outputs": {"video": {"link": ["clip", "video"]}},
    }
    assert executed(run_recipe(document)) == {("clip", None)}
    assert executed(run_recipe(document)) == set()
    Image.new("RGB", (32, 32), "blue").save(image_path)
    assert executed(run_recipe(document)) == {("clip", None)}


def test_a_node_needing_more_than_a_limit_is_refused_before_anything_runs(tmp_path):
    import pytest

    from reelgraph.engine.runner import RunConfigError

    greedy = dataclasses.replace(testnodes.mix, resources={"gpu": 2})
    engine = Engine(tmp_path / "greedy")
    bound = bind_recipe(parse_recipe(chain()), NodeRegistry([greedy]))
    with pytest.raises(RunConfigError, match="needs 2 of resource 'gpu' but the limit is 1"):
        engine.run(bound, RunOptions(limits={"gpu": 1}))
    assert engine.records.runs() == []
    engine.close()


def test_cancel_stops_new_work_and_keeps_finished_results(run_recipe, tmp_path, monkeypatch):
    import threading

    cancel = threading.Event()
    log = tmp_path / "log"
    monkeypatch.setenv("REELGRAPH_TEST_LOG", str(log))
    document = {
        "name": "cancel",
        "nodes": {
            "split": {"type": "text.split", "inputs": {"text": ",".join(f"x{i}" for i in range(8)), "separator": ","}},
            "slow": {"type": "test.slow", "inputs": {"text": {"link": ["split", "items"]}, "seconds": 0.2}},
            "count": {"type": "test.count", "inputs": {"items": {"link": ["slow", "text"]}}},
        },
        "outputs": {"count": {"link": ["count", "count"]}},
    }

    def on_event(event):
        if event["event"] == "node_finished" and event["node"] == "slow":
            cancel.set()

    result = run_recipe(document, workers=2, cancel=cancel, on_event=on_event, run_id="chosen-id")
    assert result.status == "cancelled" and result.run_id == "chosen-id"
    finished = [e for e in result.executions if e.node == "slow"]
    assert 1 <= len(finished) < 8 and "count" not in {e.node for e in result.executions}
    # what finished before the cancel is cached for the next run
    again = run_recipe(document, workers=2)
    assert again.status == "succeeded"
    assert not ({("slow", e.element) for e in finished if e.status == "executed"} & executed(again))


def test_a_passed_through_input_file_keeps_its_document(tmp_path):
    from reelgraph.nodes.types import Port, node_type

    @node_type("test.gate", inputs=[Port("image", "image")], outputs=[Port("image", "image")])
    def gate(ctx, image):
        return {"image": image}  # the read-only blob path it was given

    from reelgraph.nodes.builtin import NODE_TYPES

    engine = Engine(tmp_path / "home")
    document = {
        "name": "gate",
        "nodes": {
            "card": {"type": "image.title_card", "inputs": {"text": "x", "width": 32, "height": 32}},
            "gate": {"type": "test.gate", "inputs": {"image": {"link": ["card", "image"]}}},
        },
        "outputs": {"card": {"link": ["card", "image"]}, "gate": {"link": ["gate", "image"]}},
    }
    result = engine.run(bind_recipe(parse_recipe(document), NodeRegistry([*NODE_TYPES, gate])), RunOptions())
    assert result.outputs["gate"].elements == result.outputs["card"].elements
    assert result.outputs["gate"].elements[0]["ext"] == ".png"
    engine.close()
