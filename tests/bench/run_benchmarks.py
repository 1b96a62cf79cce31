"""Engine benchmarks: no-op reruns, cold CLI reruns, per-node overhead, and work saved by the cache.

Run from the repository root (``scripts/bench.sh`` does the first):

    .venv/bin/python -m reelgraph.tests.bench.run_benchmarks           # full (about half a minute)
    .venv/bin/python -m reelgraph.tests.bench.run_benchmarks --quick   # smoke mode (a few seconds)
    .venv/bin/python -m reelgraph.tests.bench.run_benchmarks --json bench.json   # also write the results

Speed is reported, never asserted: every timing is shown next to its target and next to a
baseline measured in the same process, as ratios. The exit status is 0 whatever the timings
are; it is 1 only when a benchmark could not run at all (e.g. the CLI failed), which is a bug,
not a slowness.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reelgraph.engine import Engine, RunOptions
from reelgraph.engine.canonical import digest_json
from reelgraph.graphs.validate import BoundRecipe, bind_recipe, parse_recipe
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext

REPO_ROOT = Path(__file__).resolve().parents[2]

from reelgraph.tests.bench import bench_nodes

NODE_TYPES = bench_nodes.NODE_TYPES
MS = 1e-3


# ---- settings -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    mode: str
    dag_nodes: int = 1000  # the graph of benchmarks 1, 2 and 4
    noop_repeats: int = 20
    noop_no_outputs_repeats: int = 5
    cli_repeats: int = 10
    exec_nodes: int = 300  # benchmark 3
    exec_repeats: int = 3
    direct_repeats: int = 30
    scenes: int = 20  # benchmark 5
    fanout_repeats: int = 5
    workers: int = max(2, os.cpu_count() or 2)  # what `reelgraph run` uses by default
    seed: int = 20240601


FULL = Settings(mode="full")
QUICK = Settings(
    mode="quick",
    noop_repeats=5,
    noop_no_outputs_repeats=2,
    cli_repeats=3,
    exec_nodes=100,
    exec_repeats=1,
    direct_repeats=10,
    fanout_repeats=1,
)


# ---- results --------------------------------------------------------------------------------
@dataclass
class Row:
    """One reported number. Lower is better unless ``higher_is_better``."""

    bench: str
    metric: str
    value: float | None
    unit: str  # "s" values are shown in ms; "fraction" as a percentage; "" as is
    target: float | None = None
    stretch: float | None = None  # the stricter target, when the issue names one
    baseline_label: str = ""
    baseline: float | None = None
    higher_is_better: bool = False
    note: str = ""
    error: str | None = None

    @property
    def target_ratio(self) -> float | None:
        return _ratio(self.value, self.target)

    @property
    def stretch_ratio(self) -> float | None:
        return _ratio(self.value, self.stretch)

    @property
    def baseline_ratio(self) -> float | None:
        return _ratio(self.value, self.baseline)

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        if self.target is None or self.value is None:
            return "info"
        met = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return "meets" if met else "MISSES"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            target_ratio=self.target_ratio,
            stretch_ratio=self.stretch_ratio,
            baseline_ratio=self.baseline_ratio,
            verdict=self.verdict,
        )
        return data


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        if value >= 1:
            return f"{value:.2f} s"
        ms = value / MS
        if ms >= 100:
            return f"{ms:,.0f} ms"
        if ms >= 1:
            return f"{ms:.1f} ms"
        if ms >= 0.01:
            return f"{ms:.3f} ms"
        return f"{value * 1e6:.2f} us"
    if unit == "fraction":
        return f"{value * 100:.1f}%"
    if unit == "":
        return f"{value:g}"
    return f"{value:g} {unit}"


def _fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x"


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile (with 20 samples, p99 is the slowest one)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


# ---- recipes --------------------------------------------------------------------------------
def dag_recipe(count: int, seed: int, *, window: int = 48, sources: int = 8, name: str = "bench-dag") -> dict[str, Any]:
    """A seeded random-ish DAG of ``count`` cheap nodes, 1-3 parents each, one declared output.

    Parents come from the previous ``window`` nodes. Every node is an ancestor of the last one
    (which the output names), so the whole graph is needed: childless nodes are adopted by later
    nodes, and the last few nodes join whatever is still childless.
    """
    if count < 2:
        raise ValueError("a DAG benchmark needs at least 2 nodes")
    sources = max(1, min(sources, count - 1))
    rng = random.Random(seed)
    open_nodes: list[int] = []  # no child yet, oldest first
    nodes: dict[str, Any] = {}
    for i in range(count):
        node_id = f"n{i:04d}"
        if i < sources:
            nodes[node_id] = {"type": "bench.source", "inputs": {"text": f"source {i} {rng.random():.6f}", "k": i}}
            open_nodes.append(i)
            continue
        left = count - i  # nodes still to create, this one included
        if len(open_nodes) >= 2 * left - 1:  # must start closing: join the oldest childless nodes
            parents = open_nodes[:3]
        else:
            wanted = rng.randint(1, 3)
            lo = max(0, i - window)
            parents = []
            if open_nodes and i - open_nodes[0] >= window // 2:
                parents.append(open_nodes[0])  # adopt an old childless node
            pool = [p for p in range(lo, i) if p not in parents]
            parents += rng.sample(pool, min(wanted - len(parents), len(pool))) if wanted > len(parents) else []
        open_nodes = [p for p in open_nodes if p not in parents]
        open_nodes.append(i)
        inputs: dict[str, Any] = {"salt": f"s{rng.randrange(10_000)}", "k": rng.randrange(100)}
        for port, parent in zip("abc", parents):
            inputs[port] = {"link": [f"n{parent:04d}", "out"]}
        nodes[node_id] = {"type": "bench.mix", "inputs": inputs}
    assert open_nodes == [count - 1], open_nodes
    return {"name": name, "nodes": nodes, "outputs": {"final": {"link": [f"n{count - 1:04d}", "out"]}}}


def fanout_recipe(scenes: list[str], name: str = "bench-fanout") -> dict[str, Any]:
    """script (list of scenes) -> prompt -> image -> clip (each per scene) -> concat (aggregates)."""
    return {
        "name": name,
        "nodes": {
            "script": {"type": "bench.scenes", "inputs": {"scenes": scenes}},
            "prompt": {"type": "bench.step", "inputs": {"text": {"link": ["script", "items"]}, "stage": "prompt"}},
            "image": {"type": "bench.step", "inputs": {"text": {"link": ["prompt", "out"]}, "stage": "image"}},
            "clip": {"type": "bench.step", "inputs": {"text": {"link": ["image", "out"]}, "stage": "clip"}},
            "concat": {"type": "bench.gather", "inputs": {"parts": {"link": ["clip", "out"]}}},
        },
        "outputs": {"video": {"link": ["concat", "out"]}},
    }


def scene_texts(count: int) -> list[str]:
    return [f"Scene {i + 1}: the narrator describes moment number {i + 1} of the story." for i in range(count)]


# ---- helpers --------------------------------------------------------------------------------
def registry() -> NodeRegistry:
    return NodeRegistry(NODE_TYPES)


def bind(document: Mapping[str, Any]) -> BoundRecipe:
    return bind_recipe(parse_recipe(document), registry(), base_dir=REPO_ROOT)


def counts(result: Any) -> dict[str, int]:
    found = {"executed": 0, "cached": 0, "failed": 0, "skipped": 0}
    for execution in result.executions:
        found[execution.status] = found.get(execution.status, 0) + 1
    return found


def expect_all(result: Any, status: str, total: int) -> None:
    seen = counts(result)
    if result.status != "succeeded" or seen.get(status) != total:
        raise RuntimeError(f"expected {total} {status} executions, got run {result.status} with {seen}")


class Scratch:
    """Temporary folders for engine homes, removed at the end."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="reelgraph-bench-"))
        self._count = 0

    def folder(self, label: str) -> Path:
        self._count += 1
        path = self.root / f"{self._count:02d}-{label}"
        path.mkdir()
        return path

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def open_engine(home: Path) -> Iterator[Engine]:
    engine = Engine(home=home)
    try:
        yield engine
    finally:
        engine.close()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def direct_evaluation_seconds(document: Mapping[str, Any], repeats: int) -> float:
    """Median time to call every node function of a (fan-out free) recipe in a plain loop."""
    types = {t.id: t for t in NODE_TYPES}
    plan = []
    for node_id, spec in document["nodes"].items():
        node_type = types[spec["type"]]
        plan.append((node_id, node_type, spec["inputs"]))
    context = NodeContext(Path(tempfile.gettempdir()), "direct", None)
    samples = []
    for _ in range(repeats):
        values: dict[str, Mapping[str, Any]] = {}
        started = time.perf_counter()
        for node_id, node_type, inputs in plan:
            kwargs = {}
            for port in node_type.inputs:
                value = inputs.get(port.name, port.default)
                if isinstance(value, dict) and "link" in value:
                    source, output = value["link"]
                    value = values[source][output]
                kwargs[port.name] = value
            values[node_id] = node_type.run(context, **kwargs)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


# ---- benchmarks 1 and 4: no-op rerun in a warm process ----------------------------------------
def bench_noop(settings: Settings, scratch: Scratch, state: dict[str, Any]) -> list[Row]:
    n = settings.dag_nodes
    document = dag_recipe(n, settings.seed)
    bind_s, bound = timed(lambda: bind(document))
    home = scratch.folder("dag-home")
    state["dag_document"], state["dag_home"] = document, home
    options = RunOptions(workers=settings.workers)
    with open_engine(home) as engine:
        populate_s, first = timed(lambda: engine.run(bound, options))
        expect_all(first, "executed", n)
        # floor: the per-node work no cache can skip, done in a plain loop with the engine's own
        # primitives: read + parse each action-cache entry and hash each key document.
        entries = [(e.cache_key, e.key_doc) for e in first.executions]

        def floor_once() -> None:
            for key, key_doc in entries:
                if engine.store.get_action(key) is None or digest_json(key_doc) != key:
                    raise RuntimeError("floor baseline: cache entry missing or key mismatch")

        samples, floor_samples = [], []
        for _ in range(settings.noop_repeats):  # interleaved, so machine load hits both alike
            seconds, result = timed(lambda: engine.run(bound, options))
            expect_all(result, "cached", n)
            samples.append(seconds)
            floor_samples.append(timed(floor_once)[0])

        # the same graph with no declared outputs: every node is a target
        no_outputs = dict(document, outputs={})
        bound_all = bind(no_outputs)
        all_samples = []
        for _ in range(settings.noop_no_outputs_repeats):
            seconds, result = timed(lambda: engine.run(bound_all, options))
            expect_all(result, "cached", n)
            all_samples.append(seconds)

    p50, p99, floor = statistics.median(samples), percentile(samples, 0.99), statistics.median(floor_samples)
    state["noop_p50"] = p50
    floor_label = f"floor: get_action+key hash x{n}"
    rows = [
        Row("1 no-op rerun", f"{n}-node DAG, engine.run p50 (n={len(samples)})", p50, "s",
            target=0.100, stretch=0.050, baseline_label=floor_label, baseline=floor),
        Row("1 no-op rerun", f"{n}-node DAG, engine.run p99", p99, "s",
            baseline_label="p50 (tail / median)", baseline=p50),
        Row("1 no-op rerun", "same graph, no declared outputs, p50", statistics.median(all_samples), "s",
            baseline_label="with one declared output (p50)", baseline=p50,
            note="every node is a target of needed_nodes()"),
        Row("1 no-op rerun", f"parse+bind the {n}-node recipe (not in engine.run)", bind_s, "s",
            baseline_label="engine.run no-op p50", baseline=p50),
        Row("4 cache-hit overhead", "no-op p50 / node", p50 / n, "s", target=0.1 * MS,
            baseline_label="floor per node", baseline=floor / n),
    ]
    state["populate_s"] = populate_s
    return rows


# ---- benchmark 2: cold CLI no-op rerun ---------------------------------------------------------
def _fake_distribution(folder: Path, module: str) -> None:
    """A dist-info publishing the bench node types under the ``reelgraph.nodes`` entry point group."""
    dist = folder / "reelgraph_benchnodes-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reelgraph-benchnodes\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(f"[reelgraph.nodes]\nbench = {module}:NODE_TYPES\n")


def _cli_command() -> list[str]:
    script = Path(sys.executable).with_name("reelgraph")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "reelgraph.cli"]


def _run(command: list[str], env: Mapping[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(command, env=dict(env), cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done


_SUMMARY = re.compile(r"run \w+ (\w+) in ([0-9.]+)s \(([^)]*)\)")


def bench_cli(settings: Settings, scratch: Scratch, state: dict[str, Any]) -> list[Row]:
    n = settings.dag_nodes
    if "dag_home" not in state:
        raise RuntimeError("needs the cache that benchmark 1 populates, and benchmark 1 did not run")
    plugin_dir = scratch.folder("plugin")
    _fake_distribution(plugin_dir, bench_nodes.__name__)
    recipe_path = scratch.folder("recipe") / "bench_dag.json"
    recipe_path.write_text(json.dumps(state["dag_document"]))
    out_dir = scratch.folder("out")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("REELGRAPH_HOME", None)
    command = [*_cli_command(), "--home", str(state["dag_home"]), "run", str(recipe_path), "--out", str(out_dir), "--quiet"]
    bare = [sys.executable, "-c", "pass"]
    imports = [
        sys.executable,
        "-c",
        "import reelgraph.cli, reelgraph.engine, reelgraph.graphs.validate\n"
        "from reelgraph.nodes.registry import default_registry\n"
        "r = default_registry()\n"
        "assert r.get('bench.mix') is not None, r.load_errors",
    ]

    def cli_once() -> tuple[float, float]:
        seconds, done = _run(command, env)
        summary = _SUMMARY.search(done.stderr)
        if done.returncode != 0 or summary is None or summary.group(1) != "succeeded":
            raise RuntimeError(f"`{' '.join(command)}` exited {done.returncode}: {done.stderr.strip()[:800]}")
        if summary.group(3) != f"{n} cached":
            raise RuntimeError(f"CLI rerun was not a no-op: {summary.group(0)}")
        return seconds, float(summary.group(2))

    # warm-up: the cache is already full from benchmark 1; this also warms the OS caches and .pyc files
    for _ in range(2):
        cli_once()
        _run(bare, env)
        _run(imports, env)
    cli_samples, engine_samples, bare_samples, import_samples = [], [], [], []
    for _ in range(settings.cli_repeats):  # interleaved, so drift hits all three alike
        bare_samples.append(_run(bare, env)[0])
        seconds, engine_seconds = cli_once()
        cli_samples.append(seconds)
        engine_samples.append(engine_seconds)
        import_s, done = _run(imports, env)
        if done.returncode != 0:
            raise RuntimeError(f"import probe failed: {done.stderr.strip()[-800:]}")
        import_samples.append(import_s)

    bare_s, cli_s = statistics.median(bare_samples), statistics.median(cli_samples)
    imports_s = statistics.median(import_samples) - bare_s
    engine_s = statistics.median(engine_samples)
    excl = cli_s - bare_s
    return [
        Row("2 cold CLI no-op", f"`reelgraph run`, {n} nodes, p50 minus interpreter (n={len(cli_samples)})",
            excl, "s", target=1.0, baseline_label="bare `python -c pass`", baseline=bare_s),
        Row("2 cold CLI no-op", "  of which: imports + node registry", imports_s, "s",
            baseline_label="CLI minus interpreter", baseline=excl),
        Row("2 cold CLI no-op", "  of which: engine.run (CLI's own report)", engine_s, "s",
            baseline_label="CLI minus interpreter", baseline=excl),
        Row("2 cold CLI no-op", "  of which: the rest (parse, bind, open, export)",
            max(0.0, excl - imports_s - engine_s), "s", baseline_label="CLI minus interpreter", baseline=excl),
        Row("2 cold CLI no-op", "bare interpreter start (`python -c pass`)", bare_s, "s"),
    ]


# ---- benchmark 3: per-node overhead on the execute path ----------------------------------------
def bench_execute(settings: Settings, scratch: Scratch, state: dict[str, Any]) -> list[Row]:
    n = settings.exec_nodes
    document = dag_recipe(n, settings.seed + 1, name="bench-exec")
    bound = bind(document)
    direct_s = direct_evaluation_seconds(document, settings.direct_repeats)
    direct_per_node = direct_s / n
    rows = []
    for workers in sorted({1, settings.workers}):
        samples = []
        for _ in range(settings.exec_repeats):
            with open_engine(scratch.folder(f"exec-w{workers}")) as engine:
                seconds, result = timed(lambda: engine.run(bound, RunOptions(workers=workers)))
            expect_all(result, "executed", n)
            samples.append(seconds)
        wall = statistics.median(samples)
        overhead = wall / n - direct_per_node
        rows.append(
            Row("3 execute overhead", f"per node, {n}-node DAG, cold cache, workers={workers}", overhead, "s",
                target=5 * MS, baseline_label="direct node-function call", baseline=direct_per_node,
                note=f"wall {wall:.3f}s over {n} nodes (median of {len(samples)})")
        )
    populate = state.get("populate_s")
    if populate is not None:
        big = settings.dag_nodes
        rows.append(
            Row("3 execute overhead", f"per node, {big}-node DAG first run, workers={settings.workers}",
                populate / big - direct_per_node, "s", target=5 * MS,
                baseline_label="direct node-function call", baseline=direct_per_node,
                note="single sample: the populate run of benchmark 1")
        )
    return rows


# ---- benchmark 5: work saved by the cache on a one-scene edit ----------------------------------
def bench_fanout(settings: Settings, scratch: Scratch, state: dict[str, Any]) -> list[Row]:
    scenes = scene_texts(settings.scenes)
    edited = list(scenes)
    edited[len(edited) // 3] += " (rewritten)"
    before, after = bind(fanout_recipe(scenes)), bind(fanout_recipe(edited))
    options = RunOptions(workers=settings.workers)
    incremental_s, fresh_s = [], []
    for _ in range(settings.fanout_repeats):
        with open_engine(scratch.folder("fanout-incremental")) as engine:
            first = engine.run(before, options)
            expect_all(first, "executed", len(first.executions))
            seconds, second = timed(lambda: engine.run(after, options))
        incremental_s.append(seconds)
        with open_engine(scratch.folder("fanout-fresh")) as engine:
            seconds, fresh = timed(lambda: engine.run(after, options))
        fresh_s.append(seconds)
        expect_all(fresh, "executed", len(fresh.executions))
        if second.status != "succeeded" or second.outputs["video"].elements != fresh.outputs["video"].elements:
            raise RuntimeError("the incremental rerun's output differs from a from-scratch run of the edited recipe")
    seen, total = counts(second), len(second.executions)
    avoided = 1 - seen["executed"] / total
    fresh_total = len(fresh.executions)
    return [
        Row("5 work saved", f"edit 1 of {settings.scenes} scenes: executions avoided "
            f"({seen['executed']} of {total} executed)", avoided, "fraction", target=0.90, higher_is_better=True,
            baseline_label=f"fresh cache ({fresh_total} of {fresh_total} executed)",
            baseline=1 - counts(fresh)["executed"] / fresh_total),
        Row("5 work saved", "  rerun wall time after the edit (p50)", statistics.median(incremental_s), "s",
            baseline_label="fresh-cache run of the edited recipe", baseline=statistics.median(fresh_s)),
    ]


BENCHMARKS: list[tuple[str, Callable[[Settings, Scratch, dict[str, Any]], list[Row]]]] = [
    ("1 no-op rerun", bench_noop),
    ("2 cold CLI no-op", bench_cli),
    ("3 execute overhead", bench_execute),
    ("5 work saved", bench_fanout),
]


# ---- report -----------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        from importlib.metadata import version

        info["reelgraph"] = version("reelgraph")
    except Exception:  # noqa: BLE001 - informational only
        pass
    try:
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip() or None
    except Exception:  # noqa: BLE001
        pass
    return info


def render(rows: list[Row], settings: Settings, info: Mapping[str, Any], seconds: float) -> str:
    header = ["benchmark", "metric", "measured", "target", "/target", "baseline (same run)", "", "/baseline", ""]
    table = []
    for row in rows:
        if row.error:
            table.append([row.bench, row.metric, "ERROR", "", "", row.error[:60], "", "", "ERROR"])
            continue
        if row.target is None:
            target = ""
        else:
            target = (">= " if row.higher_is_better else "<= ") + _fmt(row.target, row.unit)
            if row.stretch is not None:
                target += f" ({_fmt(row.stretch, row.unit)})"
        ratio = _fmt_ratio(row.target_ratio) if row.target is not None else ""
        if row.stretch is not None:
            ratio += f" ({_fmt_ratio(row.stretch_ratio)})"
        table.append([
            row.bench, row.metric, _fmt(row.value, row.unit), target, ratio,
            row.baseline_label, _fmt(row.baseline, row.unit) if row.baseline is not None else "",
            _fmt_ratio(row.baseline_ratio) if row.baseline_label else "", row.verdict,
        ])
    widths = [max(len(str(line[i])) for line in [header, *table]) for i in range(len(header))]
    right = {2, 3, 4, 6, 7}

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [
        f"reelgraph engine benchmarks ({settings.mode} mode, workers={settings.workers}, seed={settings.seed})",
        "  " + ", ".join(f"{k} {v}" for k, v in info.items() if v is not None),
        "",
        line(header),
        line(["-" * w for w in widths]),
    ]
    previous = None
    for row, cells in zip(rows, table):
        if previous is not None and row.bench != previous:
            out.append("")
        previous = row.bench
        out.append(line(cells))
    out.append("")
    out.append("/target: measured / target (stretch target in brackets); <= 1 is within target,"
               " except 'work saved' where >= 1 is.")
    out.append("/baseline: measured / a baseline measured in this same run. Timings are reported, never asserted.")
    notes = [f"  {row.bench}, {row.metric.strip()}: {row.note}" for row in rows if row.note]
    if notes:
        out.append("notes:")
        out.extend(notes)
    out.append(f"total benchmark time {seconds:.1f}s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: fewer repeats, smaller graphs")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--workers", type=int, help="engine workers (default: what `reelgraph run` uses)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.workers is not None:
        settings = Settings(**{**asdict(settings), "workers": max(1, args.workers)})
    started = time.perf_counter()
    scratch = Scratch()
    rows: list[Row] = []
    state: dict[str, Any] = {}
    try:
        for name, bench in BENCHMARKS:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                rows.extend(bench(settings, scratch, state))
            except Exception as exc:  # noqa: BLE001 - report and go on with the others
                traceback.print_exc()
                rows.append(Row(name, "could not run", None, "", error=f"{type(exc).__name__}: {exc}"))
    finally:
        scratch.close()
    elapsed = time.perf_counter() - started
    info = environment()
    rows.sort(key=lambda row: row.bench.split()[0])  # stable: keeps each benchmark's own order
    print(render(rows, settings, info, elapsed))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "mode": settings.mode,
            "settings": asdict(settings),
            "environment": info,
            "seconds": round(elapsed, 3),
            "results": [row.to_json() for row in rows],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
