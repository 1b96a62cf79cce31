"""Executing a bound recipe: plan with networkx, key every execution, reuse cached results,
run the rest on a bounded worker pool, and keep going past failures."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
import traceback
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from ..graphs.validate import BoundNode, BoundRecipe
from ..nodes.types import (
    FILE_TYPES,
    DownstreamUse,
    NodeContext,
    NodeFailure,
    NodeType,
    type_label,
    value_matches,
)
from .canonical import digest_bytes
from .cost import settled, spent
from .expand import ElementWork, ExpandError, KeyContext, cached_result, expand
from .records import Execution, RunRecords
from .source import source_digest, stale_source_warning
from .store import ActionResult, ArtifactStore
from .streaming import (
    PartialOutputs,
    Prefill,
    downstream_uses,
    stream_sources,
    upstream_view,
)
from .values import (
    FAILED,
    OutputError,
    PortValue,
    assemble_outputs,
    blobs_in,
    decode_input,
    encode_output,
    input_blob_docs,
)

if TYPE_CHECKING:
    from ..comfy_workflows.pool import ComfyPool

Event = dict[str, Any]


@dataclass(frozen=True)
class RunOptions:
    workers: int = 4
    # Upper bound per named resource a node type holds (e.g. {"ffmpeg": 2}); unnamed ones are unbounded.
    limits: Mapping[str, int] = field(default_factory=dict)
    force: frozenset[str] = frozenset()  # node ids to execute even when cached
    outputs: tuple[str, ...] | None = None  # subset of the recipe's outputs; None = all
    on_event: Callable[[Event], None] | None = None
    run_id: str | None = None  # a caller (e.g. the API server) may choose the id
    # Set it to cancel: nothing new starts, running implementations see ctx.cancelled.
    cancel: threading.Event | None = None
    # ComfyUI instances for node types placed there; keep workers >= comfy.min_workers() (instances x 2).
    comfy: ComfyPool | None = None


@dataclass
class RunResult:
    run_id: str
    status: str  # succeeded | failed | cancelled | interrupted
    executions: list[Execution]
    outputs: dict[str, PortValue]
    seconds: float

    @property
    def failures(self) -> list[Execution]:
        return [e for e in self.executions if e.status == "failed"]


@dataclass
class _Outcome:
    """What a worker hands back: the execution's result and any results it computed for children."""

    result: ActionResult
    from_cache: bool
    prefills: list[tuple[DownstreamUse, dict[str, Any], tuple[str, ...]]] = field(default_factory=list)


class RunConfigError(ValueError):
    """Run options that make the recipe impossible to run (e.g. a resource limit below a node's need)."""


class StepError(Exception):
    def __init__(self, step: str, cause: str) -> None:
        super().__init__(cause)
        self.step = step
        self.cause = cause


class _FailedOutputs(dict[str, PortValue]):
    """Outputs of a node that could not run: every output name reads as one failed value."""

    def __missing__(self, key: str) -> PortValue:
        return PortValue([FAILED], is_list=False)


def needed_nodes(bound: BoundRecipe, outputs: Iterable[str] | None) -> list[str]:
    """Only ancestors of the requested outputs run; with no declared outputs, everything does."""
    if not bound.outputs:
        return list(nx.topological_sort(bound.graph))
    names = list(bound.outputs) if outputs is None else list(outputs)
    wanted = {bound.outputs[name].node for name in names}
    frontier = list(wanted)
    while frontier:  # one reverse walk from all targets at once
        for parent in bound.graph.predecessors(frontier.pop()):
            if parent not in wanted:
                wanted.add(parent)
                frontier.append(parent)
    return [node for node in nx.topological_sort(bound.graph) if node in wanted]


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:80]


def _check_input_types(node_type: NodeType, docs: Mapping[str, Any]) -> None:
    """Values that arrived through a json link are only now known to fit (or not) their input."""
    for port in node_type.inputs:
        if port.type in FILE_TYPES or port.type == "json":
            continue
        doc = docs[port.name]
        values = doc if port.is_list and isinstance(doc, list) else [doc]
        for value in values:
            if not (value is None and port.optional) and not value_matches(value, port.type):
                raise NodeFailure(f"input {port.name!r} takes {type_label(port)}, got {type(value).__name__} {value!r:.40}")


class Runner:
    """One run of one recipe. Only the coordinating thread touches run state and records."""

    def __init__(
        self,
        bound: BoundRecipe,
        store: ArtifactStore,
        records: RunRecords,
        work_root: Path,
        options: RunOptions,
    ) -> None:
        self.bound = bound
        self.store = store
        self.records = records
        self.options = options
        self.run_id = options.run_id or uuid.uuid4().hex[:12]
        self.work_dir = work_root / self.run_id
        self.cancelled = options.cancel or threading.Event()
        self._values: dict[str, Mapping[str, PortValue]] = {}
        self._executions: list[Execution] = []
        self._unrecorded: list[Execution] = []
        self._needed: set[str] = set()
        self._node_works: dict[str, dict[int | None, ElementWork]] = {}
        self._element_results: dict[str, dict[int | None, Mapping[str, Any] | Any]] = defaultdict(dict)
        self._open_elements: dict[str, int] = {}
        self._finished: list[str] = []  # nodes whose last element settled; the loop releases their children
        self._partial: dict[str, PartialOutputs] = {}  # fanned nodes still settling
        self._stream_candidates: set[str] = set()  # children of nodes with newly settled elements
        self._prefills: dict[tuple[str, int | None], Prefill] = {}
        self._warned_sources: set[str] = set()
        self._queue: deque[ElementWork] = deque()
        self._running: dict[Future[_Outcome], tuple[ElementWork, float]] = {}
        self._inflight: dict[str, list[ElementWork]] = {}  # key -> works waiting on the one running it
        self._held: dict[str, int] = defaultdict(int)
        self._key_context = KeyContext(store, bound.base_dir)

    # ---- public -------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run the recipe. ComfyUI-placed executions are keyed with the versions bound by
        ``comfy_workflows.keys.keys_from`` around this call (``Engine.run`` does)."""
        started = time.perf_counter()
        order = needed_nodes(self.bound, self.options.outputs)
        self._needed = set(order)
        self._check_limits(order)
        recipe_name = self.bound.recipe.name or "unnamed"
        # the record only needs to identify the recipe version, so pydantic's fast dump suffices here
        recipe_digest = digest_bytes(self.bound.recipe.model_dump_json(exclude_unset=True).encode())
        self.records.start_run(self.run_id, recipe_name, recipe_digest, dict(self.bound.params))
        self._emit({"event": "run_started", "run_id": self.run_id, "nodes": len(order)})
        # A node becomes ready once every upstream node has all its elements settled; before that,
        # a fanned node may stream: element i starts once element i of its fanned inputs is done.
        waiting = {node: self.bound.graph.in_degree(node) for node in order}
        ready = deque(node for node in order if waiting[node] == 0)

        def advance() -> None:
            """Start whatever became startable, until nothing more settles synchronously (cache hits)."""
            while ready or self._finished or self._stream_candidates:
                while ready:
                    self._start_node(ready.popleft())
                while self._finished:
                    for child in self.bound.graph.successors(self._finished.pop()):
                        if child in waiting:
                            waiting[child] -= 1
                            if waiting[child] == 0:
                                ready.append(child)
                if not ready and self._stream_candidates:
                    candidates = sorted(self._stream_candidates, key=position.__getitem__)
                    self._stream_candidates.clear()
                    for child in candidates:
                        if waiting[child] > 0:
                            self._stream(child)

        position = {node: index for index, node in enumerate(order)}

        status = "succeeded"
        try:
            with ThreadPoolExecutor(max_workers=max(1, self.options.workers), thread_name_prefix="reelgraph") as pool:
                while ready or self._running or self._queue or self._finished or self._stream_candidates:
                    if self.cancelled.is_set():
                        ready.clear()
                        self._queue.clear()
                        self._stream_candidates.clear()
                        if not self._running:
                            break
                    else:
                        advance()
                    self._dispatch(pool)
                    self._flush_records()
                    if not self._running:
                        continue
                    done, _ = wait(list(self._running), timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        self._complete(future)
        except BaseException:
            self.cancelled.set()
            status = "interrupted"
            raise
        finally:
            self._flush_records()
            if status != "interrupted" and self.cancelled.is_set():
                status = "cancelled"
            elif status != "interrupted" and any(e.status in ("failed", "skipped") for e in self._executions):
                status = "failed"
            self.records.finish_run(self.run_id, status)  # type: ignore[arg-type]
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self._emit({"event": "run_finished", "run_id": self.run_id, "status": status})
        outputs = {
            name: self._values[link.node][str(link.output)] if link.node in self._values else PortValue([FAILED], False)
            for name, link in self.bound.outputs.items()
            if self.options.outputs is None or name in self.options.outputs
        }
        return RunResult(self.run_id, status, self._executions, outputs, time.perf_counter() - started)

    # ---- coordinator ---------------------------------------------------------------------
    def _start_node(self, node_id: str) -> None:
        """Expand a node whose upstream is complete (the rest of it, if it has been streaming)."""
        node = self.bound.nodes[node_id]
        if node.node_type is None:
            cause = (
                f"{node.spec.type} is a ComfyUI node; it runs on a ComfyUI backend, and this engine has none configured"
            )
            self._fail_whole_node(node, "dispatch", cause)
            return
        started = self._node_works.get(node_id)
        if started is not None and self._open_elements[node_id] == 0:
            return  # streamed to the end already
        try:
            works = expand(node, node.node_type, self._values, self._key_context)
        except (ExpandError, NodeFailure, OSError) as exc:
            self._fail_whole_node(node, "prepare inputs", str(exc))
            return
        if started is None:
            self._begin_node(node_id, works, len(works))
            if not works:
                self._finish_node(node_id)
        for work in works:
            if started is None or work.element not in started:
                self._add_work(work)

    def _begin_node(self, node_id: str, works: list[ElementWork], count: int) -> None:
        node_type = self.bound.nodes[node_id].node_type
        assert node_type is not None
        self._node_works[node_id] = {}
        self._open_elements[node_id] = count
        if works and works[0].element is not None:
            self._partial[node_id] = PartialOutputs(node_type, count)

    def _stream(self, node_id: str) -> None:
        """Start the elements of a not-yet-ready node whose own upstream elements are settled."""
        node = self.bound.nodes[node_id]
        sources = stream_sources(node, self._values, self._partial)
        if sources is None:
            return
        started = self._node_works.get(node_id, {})
        indices = [
            index for index in range(sources.count)
            if index not in started and all(index in self._partial[s].settled for s in sources.pending)
        ]
        if not indices:
            return
        assert node.node_type is not None
        view = upstream_view(node, self._values, self._partial)
        try:
            works = expand(node, node.node_type, view, self._key_context, indices)
        except (ExpandError, NodeFailure, OSError):
            return  # the whole-node path reports it once the upstream is complete
        if node_id not in self._node_works:
            self._begin_node(node_id, works, sources.count)
        for work in works:
            self._add_work(work)

    def _add_work(self, work: ElementWork) -> None:
        self._node_works[work.node.id][work.element] = work
        self._start_work(work)

    def _start_work(self, work: ElementWork) -> None:
        """Resolve one execution from the cache (or a prefill), or queue it."""
        if work.blocked_by is not None:
            self._settle(work, "skipped", FAILED, error=("upstream", f"upstream node {work.blocked_by!r} failed"))
            return
        forced = work.node.id in self.options.force
        if not forced:
            hit = cached_result(self.store, work)
            if hit is not None:
                self._check_source(work, hit)
                self._settle(work, "cached", hit.outputs, provenance=hit.provenance)
                return
        prefill = self._prefills.pop((work.node.id, work.element), None)
        if prefill is not None and prefill.expected == work.input_docs:
            self._use_prefill(work, prefill)
            return
        if work.key in self._inflight:  # identical work already running: share its result
            self._inflight[work.key].append(work)
            return
        self._inflight[work.key] = []
        self._queue.append(work)

    def _check_source(self, work: ElementWork, hit: ActionResult) -> None:
        """Warn once per type when a cached result came from other source code of the same impl_version."""
        node_type = work.node_type
        made_by = hit.provenance.get("source")
        if (node_type.id in self._warned_sources or made_by is None
                or hit.provenance.get("impl_version") != node_type.impl_version):
            return
        if made_by != source_digest(node_type.run):
            self._warned_sources.add(node_type.id)
            self._emit({"event": "node_warning", "node": work.node.id, "element": work.element, "type": node_type.id,
                        "message": stale_source_warning(node_type.id, node_type.impl_version)})

    def _use_prefill(self, work: ElementWork, prefill: Prefill) -> None:
        now = time.time()
        result = ActionResult(key=work.key, outputs=dict(prefill.outputs), blobs=prefill.blobs,
                              provenance=self._provenance(work, now, 0.0) | {"computed_by": prefill.parent, "cost": 0.0})
        self.store.put_action(result)
        self._emit({"event": "node_started", "node": work.node.id, "element": work.element, "type": work.node_type.id})
        self._settle(work, "executed", result.outputs, provenance=result.provenance)

    def _dispatch(self, pool: ThreadPoolExecutor) -> None:
        for _ in range(len(self._queue)):
            if len(self._running) >= max(1, self.options.workers):
                return
            work = self._queue.popleft()
            if not self._resources_free(work):
                self._queue.append(work)
                continue
            for name, amount in work.node_type.resources.items():
                self._held[name] += amount
            self._emit({"event": "node_started", "node": work.node.id, "element": work.element, "type": work.node_type.id})
            uses = self._downstream_uses(work)
            future = pool.submit(self._execute, work, work.node.id in self.options.force, uses)
            self._running[future] = (work, time.perf_counter())

    def _downstream_uses(self, work: ElementWork) -> tuple[DownstreamUse, ...]:
        children = [
            self.bound.nodes[child] for child in self.bound.graph.successors(work.node.id)
            if child in self._needed and child not in self._values
        ]
        return downstream_uses(work.node, work.element, children, self._values) if children else ()

    def _check_limits(self, order: list[str]) -> None:
        """A node needing more of a resource than its limit could never start: refuse up front."""
        for node_id in order:
            node_type = self.bound.nodes[node_id].node_type
            for name, amount in (node_type.resources if node_type else {}).items():
                if amount > self.options.limits.get(name, amount):
                    raise RunConfigError(
                        f"node {node_id!r} ({node_type.id}) needs {amount} of resource {name!r}"  # type: ignore[union-attr]
                        f" but the limit is {self.options.limits[name]}"
                    )

    def _resources_free(self, work: ElementWork) -> bool:
        limits = self.options.limits
        return all(
            name not in limits or self._held[name] + amount <= limits[name]
            for name, amount in work.node_type.resources.items()
        )

    def _complete(self, future: Future[_Outcome]) -> None:
        """Settle a finished execution and every identical one that waited on it."""
        work, began = self._running.pop(future)
        for name, amount in work.node_type.resources.items():
            self._held[name] -= amount
        seconds = time.perf_counter() - began
        sharers = self._inflight.pop(work.key, [])
        try:
            outcome = future.result()
        except StepError as exc:
            error = (exc.step, exc.cause)
            self._settle(work, "failed", FAILED, seconds, error)
            for other in sharers:
                self._settle(other, "failed", FAILED, 0.0, error)
        else:
            result = outcome.result
            label = work.node.id if work.element is None else f"{work.node.id}[{work.element}]"
            for use, outputs, blobs in outcome.prefills:
                expected = {**use.inputs, use.input: result.outputs[use.output]}
                self._prefills[(use.node_id, use.element)] = Prefill(label, expected, outputs, blobs)
            status = "cached" if outcome.from_cache else "executed"
            self._settle(work, status, result.outputs, seconds, provenance=result.provenance)
            for other in sharers:
                self._settle(other, "cached", result.outputs, provenance=result.provenance)
        self._flush_records()  # a finished execution is on disk before anything else happens

    def _settle(
        self,
        work: ElementWork,
        status: str,
        outputs: Mapping[str, Any] | Any,
        seconds: float = 0.0,
        error: tuple[str, str] | None = None,
        provenance: Mapping[str, Any] | None = None,  # of the result it settled with (its cost)
    ) -> None:
        """Record one execution's outcome; finishing the node when that was its last open element."""
        cost, saved = settled(status, provenance)
        execution = Execution(
            node=work.node.id,
            type=work.node_type.id,
            element=work.element,
            status=status,  # type: ignore[arg-type]
            cache_key=work.key,
            seconds=round(seconds, 6),
            error={"node": work.node.id, "step": error[0], "cause": error[1]} if error else None,
            key_doc=work.key_doc if status in ("executed", "cached") else None,
            cost=cost,
            saved=saved,
        )
        self._record(execution)
        node_id = work.node.id
        self._element_results[node_id][work.element] = outputs
        partial = self._partial.get(node_id)
        if partial is not None and work.element is not None:
            partial.settle(work.element, outputs)
            self._stream_candidates.update(c for c in self.bound.graph.successors(node_id) if c in self._needed)
        self._open_elements[node_id] -= 1
        if not self._open_elements[node_id]:
            self._finish_node(node_id)

    def _finish_node(self, node_id: str) -> None:
        if node_id in self._values:
            return  # failed as a whole while some streamed elements were still running
        node_type = self.bound.nodes[node_id].node_type
        assert node_type is not None
        elements = sorted(self._node_works[node_id], key=lambda element: -1 if element is None else element)
        results = self._element_results.pop(node_id, {})
        fanned = not elements or elements[0] is not None
        self._values[node_id] = assemble_outputs(node_type.outputs, [results[e] for e in elements], fanned)
        self._partial.pop(node_id, None)
        self._finished.append(node_id)

    def _fail_whole_node(self, node: BoundNode, step: str, cause: str) -> None:
        self._record(
            Execution(
                node=node.id,
                type=node.spec.type,
                element=None,
                status="failed",
                error={"node": node.id, "step": step, "cause": cause},
            )
        )
        self._values[node.id] = _FailedOutputs()
        self._finished.append(node.id)

    def _record(self, execution: Execution) -> None:
        self._executions.append(execution)
        self._unrecorded.append(execution)
        self._emit(
            {
                "event": "node_finished",
                "node": execution.node,
                "element": execution.element,
                "status": execution.status,
                "seconds": execution.seconds,
                "error": execution.error,
                "cost": execution.cost,
                "saved": execution.saved,
            }
        )

    def _flush_records(self) -> None:
        if self._unrecorded:
            self.records.record(self.run_id, self._unrecorded)
            self._unrecorded = []

    def _emit(self, event: Event) -> None:
        if self.options.on_event is not None:
            self.options.on_event(event)

    # ---- worker --------------------------------------------------------------------------
    def _encode_prefill(
        self, use: DownstreamUse, returned: Mapping[str, Any], work_dir: Path, given: Mapping[str, Any]
    ) -> tuple[DownstreamUse, dict[str, Any], tuple[str, ...]]:
        child_type = self.bound.nodes[use.node_id].node_type
        assert child_type is not None
        names = {port.name for port in child_type.outputs}
        if set(returned) != names:
            raise OutputError(f"the result handed to {use.node_id!r} must have exactly the outputs {sorted(names)}")
        outputs = {port.name: encode_output(self.store, port, returned[port.name], work_dir, given)
                   for port in child_type.outputs}
        blobs = tuple(b for port in child_type.outputs for b in blobs_in(outputs[port.name], port.type))
        return use, outputs, blobs

    def _provenance(self, work: ElementWork, started: float, seconds: float) -> dict[str, Any]:
        node_type = work.node_type
        return {
            "node_type": node_type.id,
            "impl_version": node_type.impl_version,
            "deterministic": node_type.deterministic,
            "key_doc": work.key_doc,
            "started": started,
            "seconds": round(seconds, 6),
            "host": socket.gethostname(),
            "run_id": self.run_id,
            "source": source_digest(node_type.run),
        }

    def _execute(self, work: ElementWork, forced: bool, uses: tuple[DownstreamUse, ...]) -> _Outcome:
        """Runs in a worker thread. Holds the key's store lock so other processes wait, not repeat."""
        with self.store.lock(work.key):
            if not forced:
                hit = cached_result(self.store, work)
                if hit is not None:
                    return _Outcome(hit, True)
            suffix = "" if work.element is None else f"-{work.element}"
            work_dir = self.work_dir / f"{_safe_name(work.node.id)}{suffix}-{uuid.uuid4().hex[:6]}"
            work_dir.mkdir(parents=True)
            step = "prepare inputs"
            try:
                node_type = work.node_type
                _check_input_types(node_type, work.input_docs)
                kwargs = {
                    port.name: decode_input(self.store, port, work.input_docs[port.name]) for port in node_type.inputs
                }
                context = NodeContext(
                    work_dir,
                    work.node.id,
                    work.element,
                    lambda fraction, message: self._emit(
                        {"event": "node_progress", "node": work.node.id, "element": work.element,
                         "fraction": fraction, "message": message}
                    ),
                    self.cancelled,
                    comfy=self.options.comfy,
                    downstream=uses,
                )
                step = "execute"
                started = time.time()
                returned = node_type.run(context, **kwargs)
                finished = time.time()
                step = "store outputs"
                if not isinstance(returned, Mapping):
                    raise OutputError(f"must return a mapping of output name to value, got {type(returned).__name__}")
                missing = [port.name for port in node_type.outputs if port.name not in returned]
                unknown = sorted(set(returned) - {port.name for port in node_type.outputs})
                if missing or unknown:
                    raise OutputError(f"returned outputs do not match the declaration (missing {missing}, unknown {unknown})")
                given = input_blob_docs(self.store, work.input_docs)
                outputs = {
                    port.name: encode_output(self.store, port, returned[port.name], work_dir, given)
                    for port in node_type.outputs
                }
                blobs = tuple(b for port in node_type.outputs for b in blobs_in(outputs[port.name], port.type))
                provenance = self._provenance(work, started, finished - started)
                provenance["cost"] = spent(node_type, context, work.input_docs)  # reported, else estimated
                result = ActionResult(work.key, outputs, blobs, provenance)
                prefills = [self._encode_prefill(use, returned, work_dir, given) for use, returned in context.prefilled]
                self.store.put_action(result)  # blobs are already in; the entry comes last
                return _Outcome(result, False, prefills)
            except NodeFailure as exc:
                raise StepError(step, str(exc)) from exc
            except OutputError as exc:
                raise StepError(step, str(exc)) from exc
            except Exception as exc:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                raise StepError(
                    step, f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
                ) from exc
            finally:
                shutil.rmtree(work_dir, ignore_errors=True)
