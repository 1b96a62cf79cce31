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
from ..nodes.types import FILE_TYPES, NodeContext, NodeFailure, NodeType, type_label, value_matches
from .canonical import digest_bytes
from .expand import ElementWork, ExpandError, KeyContext, cached_result, expand
from .records import Execution, RunRecords
from .store import ActionResult, ArtifactStore
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
        self._node_works: dict[str, list[ElementWork]] = {}
        self._element_results: dict[str, dict[int | None, Mapping[str, Any] | Any]] = defaultdict(dict)
        self._open_elements: dict[str, int] = {}
        self._queue: deque[ElementWork] = deque()
        self._running: dict[Future[tuple[ActionResult, bool]], tuple[ElementWork, float]] = {}
        self._inflight: dict[str, list[ElementWork]] = {}  # key -> works waiting on the one running it
        self._held: dict[str, int] = defaultdict(int)
        self._key_context = KeyContext(store, bound.base_dir)

    # ---- public -------------------------------------------------------------------------
    def run(self) -> RunResult:
        started = time.perf_counter()
        order = needed_nodes(self.bound, self.options.outputs)
        self._check_limits(order)
        recipe_name = self.bound.recipe.name or "unnamed"
        # the record only needs to identify the recipe version, so pydantic's fast dump suffices here
        recipe_digest = digest_bytes(self.bound.recipe.model_dump_json(exclude_unset=True).encode())
        self.records.start_run(self.run_id, recipe_name, recipe_digest, dict(self.bound.params))
        self._emit({"event": "run_started", "run_id": self.run_id, "nodes": len(order)})
        # a node becomes ready once every upstream node has all its elements settled
        waiting = {node: self.bound.graph.in_degree(node) for node in order}
        ready = deque(node for node in order if waiting[node] == 0)

        def release_children(finished_nodes: list[str]) -> None:
            for finished in finished_nodes:
                for child in self.bound.graph.successors(finished):
                    if child in waiting:
                        waiting[child] -= 1
                        if waiting[child] == 0:
                            ready.append(child)

        status = "succeeded"
        try:
            with ThreadPoolExecutor(max_workers=max(1, self.options.workers), thread_name_prefix="reelgraph") as pool:
                while ready or self._running or self._queue:
                    if self.cancelled.is_set():
                        ready.clear()
                        self._queue.clear()
                        if not self._running:
                            break
                    while ready:
                        release_children(self._start_node(ready.popleft()))
                    self._dispatch(pool)
                    self._flush_records()
                    if not self._running:
                        continue
                    done, _ = wait(list(self._running), timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        release_children(self._complete(future))
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
    def _start_node(self, node_id: str) -> list[str]:
        """Expand a node whose upstream is complete; returns nodes that completed synchronously."""
        node = self.bound.nodes[node_id]
        if node.node_type is None:
            cause = (
                f"{node.spec.type} is a ComfyUI node; it runs on a ComfyUI backend, and this engine has none configured"
            )
            self._fail_whole_node(node, "dispatch", cause)
            return [node_id]
        try:
            works = expand(node, node.node_type, self._values, self._key_context)
        except (ExpandError, NodeFailure, OSError) as exc:
            self._fail_whole_node(node, "prepare inputs", str(exc))
            return [node_id]
        self._node_works[node_id] = works
        self._open_elements[node_id] = len(works)
        if not works:
            self._finish_node(node_id)
            return [node_id]
        completed = [self._start_work(work) for work in works]
        return [node for node in completed if node is not None]

    def _start_work(self, work: ElementWork) -> str | None:
        """Resolve one execution from the cache or queue it; returns the node id if that completed it."""
        if work.blocked_by is not None:
            return self._settle(work, "skipped", FAILED, error=("upstream", f"upstream node {work.blocked_by!r} failed"))
        forced = work.node.id in self.options.force
        if not forced:
            hit = cached_result(self.store, work)
            if hit is not None:
                return self._settle(work, "cached", hit.outputs)
        if work.key in self._inflight:  # identical work already running: share its result
            self._inflight[work.key].append(work)
            return None
        self._inflight[work.key] = []
        self._queue.append(work)
        return None

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
            future = pool.submit(self._execute, work, work.node.id in self.options.force)
            self._running[future] = (work, time.perf_counter())

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

    def _complete(self, future: Future[tuple[ActionResult, bool]]) -> list[str]:
        """Settle a finished execution and every identical one that waited on it; returns completed nodes."""
        work, began = self._running.pop(future)
        for name, amount in work.node_type.resources.items():
            self._held[name] -= amount
        seconds = time.perf_counter() - began
        sharers = self._inflight.pop(work.key, [])
        try:
            result, from_cache = future.result()
        except StepError as exc:
            error = (exc.step, exc.cause)
            settled = [self._settle(work, "failed", FAILED, seconds, error)]
            settled += [self._settle(other, "failed", FAILED, 0.0, error) for other in sharers]
        else:
            settled = [self._settle(work, "cached" if from_cache else "executed", result.outputs, seconds)]
            settled += [self._settle(other, "cached", result.outputs) for other in sharers]
        self._flush_records()  # a finished execution is on disk before anything else happens
        return [node for node in settled if node is not None]

    def _settle(
        self,
        work: ElementWork,
        status: str,
        outputs: Mapping[str, Any] | Any,
        seconds: float = 0.0,
        error: tuple[str, str] | None = None,
    ) -> str | None:
        """Record one execution's outcome; returns the node id when that was its last open element."""
        execution = Execution(
            node=work.node.id,
            type=work.node_type.id,
            element=work.element,
            status=status,  # type: ignore[arg-type]
            cache_key=work.key,
            seconds=round(seconds, 6),
            error={"node": work.node.id, "step": error[0], "cause": error[1]} if error else None,
            key_doc=work.key_doc if status in ("executed", "cached") else None,
        )
        self._record(execution)
        self._element_results[work.node.id][work.element] = outputs
        self._open_elements[work.node.id] -= 1
        if self._open_elements[work.node.id]:
            return None
        self._finish_node(work.node.id)
        return work.node.id

    def _finish_node(self, node_id: str) -> None:
        node_type = self.bound.nodes[node_id].node_type
        assert node_type is not None
        works = self._node_works[node_id]
        results = self._element_results.pop(node_id, {})
        fanned = not works or works[0].element is not None
        self._values[node_id] = assemble_outputs(node_type.outputs, [results[w.element] for w in works], fanned)

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
    def _execute(self, work: ElementWork, forced: bool) -> tuple[ActionResult, bool]:
        """Runs in a worker thread. Holds the key's store lock so other processes wait, not repeat."""
        with self.store.lock(work.key):
            if not forced:
                hit = cached_result(self.store, work)
                if hit is not None:
                    return hit, True
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
                result = ActionResult(
                    key=work.key,
                    outputs=outputs,
                    blobs=blobs,
                    provenance={
                        "node_type": node_type.id,
                        "impl_version": node_type.impl_version,
                        "deterministic": node_type.deterministic,
                        "key_doc": work.key_doc,
                        "started": started,
                        "seconds": round(finished - started, 6),
                        "host": socket.gethostname(),
                        "run_id": self.run_id,
                    },
                )
                self.store.put_action(result)  # blobs are already in; the entry comes last
                return result, False
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
