"""Template benchmark: the bundled explainer template, offline, end to end in this process.

    .venv/bin/python -m reelgraph.tests.bench.template_bench            # 1080x1920, about a minute on 2 cores
    .venv/bin/python -m reelgraph.tests.bench.template_bench --quick    # 270x480, about 10 s
    .venv/bin/python -m reelgraph.tests.bench.template_bench --json template.json

Reports wall time per second of output video, and how much of the wall time is the engine
rather than node work. Node work is measured two ways from the same run:

- node functions: each executed node's own function (its provenance start and length in the
  action cache), i.e. the time spent in the node type's implementation;
- dispatch intervals: from the engine's node_started event to its node_finished event, which
  adds the engine's per-node work around the function (input decoding, cache re-check under
  the key lock, hashing outputs into the store).

The engine's share is the part of the wall time during which no node function was running
(the union of the intervals, so parallel nodes are not counted twice); the share outside every
dispatch interval is the coordinator alone (planning, keys, environment fingerprints, cache
lookups, run records). A second run on the now full cache is shown too.

Timings are reported, never asserted: exit status 0 whatever the numbers, 1 only when the run
could not happen at all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import ffmpeg
from reelgraph.engine import Engine, RunOptions, RunResult
from reelgraph.graphs.templates import template_path
from reelgraph.graphs.validate import load_and_bind
from reelgraph.nodes.registry import default_registry

from reelgraph.tests.bench.compose_bench import report
from reelgraph.tests.bench.run_benchmarks import Row, Scratch, environment, open_engine


@dataclass(frozen=True)
class Settings:
    mode: str
    template: str = "explainer"
    params: dict[str, Any] = field(default_factory=dict)  # the template's defaults, except these
    workers: int = max(2, os.cpu_count() or 2)  # what `reelgraph run` uses by default
    seed: int = 0  # unused; run_benchmarks.render shows it


FULL = Settings(mode="full")
QUICK = Settings(mode="quick", params={"width": 270, "height": 480})

Interval = tuple[float, float]


@dataclass
class Measured:
    wall: float
    result: RunResult
    dispatch: list[Interval]  # node_started -> node_finished, executed elements only
    functions: list[Interval]  # the node functions' own runs (provenance)
    function_seconds: dict[str, float]  # per node type


def union_length(intervals: list[Interval]) -> float:
    """Seconds covered by at least one interval."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def measured_run(engine: Engine, bound: Any, workers: int) -> Measured:
    """One engine run, timestamping its events (time.time, the clock provenance uses)."""
    events: list[tuple[float, dict[str, Any]]] = []

    def on_event(event: dict[str, Any]) -> None:
        events.append((time.time(), event))  # list.append is atomic: progress events come from workers

    started = time.time()
    result = engine.run(bound, RunOptions(workers=workers, on_event=on_event))
    finished = time.time()
    if result.status != "succeeded":
        causes = "; ".join(f"{e.node}[{e.element}] {e.error}" for e in result.failures)
        raise RuntimeError(f"the template run {result.status}: {causes}")
    opened: dict[tuple[str, Any], float] = {}
    dispatch = []
    for at, event in events:
        where = (event.get("node"), event.get("element"))
        if event["event"] == "node_started":
            opened[where] = at
        elif event["event"] == "node_finished" and where in opened:
            dispatch.append((opened.pop(where), at))
    functions, per_type = [], defaultdict(float)
    for execution in result.executions:
        if execution.status != "executed":
            continue
        action = engine.store.get_action(execution.cache_key)
        if action is None:
            raise RuntimeError(f"no cache entry for executed node {execution.node}[{execution.element}]")
        begin, seconds = float(action.provenance["started"]), float(action.provenance["seconds"])
        functions.append((begin, begin + seconds))
        per_type[execution.type] += seconds
    return Measured(finished - started, result, dispatch, functions, dict(per_type))


def video_seconds(engine: Engine, result: RunResult) -> float:
    doc = result.outputs["video"].elements[0]
    return float(ffmpeg.probe(str(engine.store.blob_path(doc["$artifact"])))["format"]["duration"])


def bench(s: Settings, scratch: Scratch, rows: list[Row]) -> None:
    path = template_path(s.template)
    if path is None:
        raise RuntimeError(f"no bundled template {s.template!r}")
    bound = load_and_bind(path, default_registry(), s.params)
    label = s.template + (" " + " ".join(f"{k}={v}" for k, v in s.params.items()) if s.params else " (defaults)")
    print(f"running the {label} template on a fresh cache ...", file=sys.stderr, flush=True)
    with open_engine(scratch.folder("home")) as engine:
        first = measured_run(engine, bound, s.workers)
        output = video_seconds(engine, first.result)
        print("running it again on the full cache ...", file=sys.stderr, flush=True)
        second = measured_run(engine, bound, s.workers)
    again = [e for e in second.result.executions if e.status == "executed"]
    if again:
        raise RuntimeError(f"the rerun executed {len(again)} nodes; expected every node cached")

    wall = first.wall
    busy_functions = union_length(first.functions)
    busy_dispatch = union_length(first.dispatch)
    sum_functions = sum(b - a for a, b in first.functions)
    sum_dispatch = sum(b - a for a, b in first.dispatch)
    count = len(first.functions)
    heaviest = sorted(first.function_seconds.items(), key=lambda item: -item[1])[:4]
    rows += [
        Row("1 template run", f"{label}, fresh cache, workers={s.workers}: wall per output second",
            wall / output, "s", baseline_label="real time (1 s per s)", baseline=1.0,
            note=f"wall {wall:.2f} s for {output:.2f} s of video, {count} node executions"),
        Row("1 template run", "  engine share: no node function running", (wall - busy_functions) / wall, "fraction",
            note=f"{wall - busy_functions:.2f} s of {wall:.2f} s; node functions busy {busy_functions:.2f} s"),
        Row("1 template run", "  coordinator share: outside every dispatch interval", (wall - busy_dispatch) / wall,
            "fraction", note=f"{wall - busy_dispatch:.2f} s of {wall:.2f} s"),
        Row("1 template run", "  sum of node-function seconds", sum_functions, "s",
            baseline_label="wall", baseline=wall,
            note="heaviest: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in heaviest)),
        Row("1 template run", "  engine work around node functions, per execution", (sum_dispatch - sum_functions) / count,
            "s", baseline_label="node function, per execution", baseline=sum_functions / count,
            note="dispatch interval minus function time: input decode, key lock, output hashing into the store"),
        Row("2 cached rerun", "same recipe, full cache: wall", second.wall, "s",
            baseline_label="first run wall", baseline=wall,
            note=f"{len(second.result.executions)} executions, all cached"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: width=270 height=480")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--workers", type=int, help="engine workers (default: what `reelgraph run` uses)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.workers is not None:
        settings = replace(settings, workers=max(1, args.workers))
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    scratch = Scratch()
    rows: list[Row] = []
    try:
        bench(settings, scratch, rows)
    except Exception as exc:  # noqa: BLE001 - report the failure as a row
        traceback.print_exc()
        rows.append(Row("template", "could not run", None, "", error=f"{type(exc).__name__}: {exc}"))
    finally:
        scratch.close()
    elapsed = time.perf_counter() - started
    info = environment() | {"load avg (1 min) before/after": f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"}
    title = f"reelgraph template benchmark ({settings.mode} mode, {settings.template}, offline, workers={settings.workers})"
    print(report(rows, settings, info, elapsed, title))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {"mode": settings.mode, "settings": asdict(settings), "environment": info,
                    "seconds": round(elapsed, 3), "results": [row.to_json() for row in rows]}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
