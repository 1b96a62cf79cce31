"""A pool of ComfyUI instances that node implementations run their workflows through.

The engine stays the only scheduler of the recipe graph: a node placed on ComfyUI calls
:meth:`ComfyPool.run` from its worker thread and blocks there. The pool decides *where and when*
each job goes, late (when an instance has room), from everything that waits:

* **Keep every GPU busy.** Each instance gets up to ``depth`` prompts at once (default 2: one
  running, one queued in ComfyUI behind it), so the next prompt is already queued when the
  current one ends. The engine therefore needs at least ``instances x depth`` workers busy
  with ComfyUI jobs, plus the CPU work beside them (``min_workers``).
* **Group work by model.** A job names its model ``family``. Jobs whose family an instance has
  loaded go there first; a family nobody has loaded goes to the instance that would evict least
  (a cold one before one holding another heavy model); a family loaded elsewhere is taken by
  another instance only when that one would otherwise sit idle. Before an instance switches
  from one heavy family to another the pool sends ``POST /free {"unload_models": true}`` (applied
  by ComfyUI after the running prompt), and only once the prompts queued there have started, so
  the free never lands before a prompt that still needs the old model.
* **Priority, then affinity.** Higher ``priority`` jobs are placed first (per run:
  :meth:`ComfyPool.with_priority`); within one priority, affinity and then arrival order.
* **Failures.** A model or class an instance lacks refuses the job before anything is sent
  (``CompileError``), on every instance. A lost prompt (crash, restart: ``InstanceLost``) marks the
  instance down, asks its supervisor to bring it back (managed) or waits for its health check
  (remote), and resubmits to any healthy instance; finished jobs are not touched. A timeout
  interrupts the prompt, restarts a managed instance whose prompt will not stop, and retries
  once. ``node_errors`` on submission re-read that instance's schemas and retry once where the
  job still compiles, else fail with the mapped, recipe-level message. A set cancel event takes a
  waiting job out, and interrupts or dequeues a submitted one.

Every prompt carries its UI-format workflow in ``extra_data.extra_pnginfo.workflow`` (so what
ComfyUI saves drags back onto a canvas) and, for a priority other than 0, a ComfyUI queue
``number`` (:func:`queue_number`) so priority also holds against other processes' prompts.
:meth:`ComfyPool.versions` says what besides the workflow decides a job's result (``keys.py``).

Inputs are uploaded under a content-addressed subfolder (``reelgraph/in/<sha256>/``) without
overwriting, so a retried or repeated job names the same file, ComfyUI's own cache still applies,
and no upload rewrites a file a running prompt reads; outputs get a per-job ``filename_prefix``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from .client import ComfyClient, OutputFile, ProgressCallback, ProgressEvent
from .compiler import CompiledWorkflow
from .errors import (
    ComfyError,
    ComfyHTTPError,
    ComfyTimeout,
    CompileError,
    InstanceLost,
    Interrupted,
    MappedError,
    PromptRejected,
)
from .schema import ObjectInfo
from .ui_workflow import ui_workflow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildTarget:
    """What a job's workflow is compiled for: one instance, its uploaded inputs, its output prefix."""

    info: ObjectInfo
    instance: str
    inputs: Mapping[str, str]  # upload role -> the name ComfyUI knows the file by
    prefix: str  # filename_prefix for this job's outputs


Builder = Callable[[BuildTarget], CompiledWorkflow]


@dataclass
class ComfyJob:
    """One workflow to run somewhere in the pool. ``build`` must raise ``CompileError`` when the
    instance cannot run it (the compiler does)."""

    recipe_node: str  # for messages: "motion[2]"
    build: Builder
    family: str  # the model family it loads ("wan2.1-i2v-480p", "rife:rife47.pth", ...)
    uploads: Mapping[str, Path] = field(default_factory=dict)  # role -> local file
    heavy: bool = True  # a large model: switching away from it frees memory first
    extra_data: Mapping[str, Any] = field(default_factory=dict)  # e.g. api_key_comfy_org (never logged)
    priority: int | None = None  # None: the pool handle's priority


@dataclass
class JobResult:
    files: list[Path]
    outputs: list[OutputFile]
    workflow: CompiledWorkflow
    instance: str
    prompt_id: str
    comfyui_version: str
    attempts: int

    def provenance(self) -> dict[str, Any]:
        """Where and with what it ran: for a node's JSON output (the cache key cannot know the instance)."""
        return {"placement": "comfy", "instance": self.instance, "comfyui_version": self.comfyui_version,
                "prompt_id": self.prompt_id, "attempts": self.attempts, **self.workflow.environment()}


class ComfyInstance:
    """One ComfyUI server as the pool sees it. ``recover`` (start it again if its process died) and
    ``restart`` (kill and start: a prompt that will not stop) come from a supervisor for managed
    instances; remote instances have neither and are waited for."""

    def __init__(self, url: str, name: str | None = None, *, recover: Callable[[], Any] | None = None,
                 restart: Callable[[], Any] | None = None, request_timeout: float = 30.0,
                 poll_interval: float = 0.5) -> None:
        self.url = url.rstrip("/")
        self.name = name or urlsplit(self.url).netloc
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval
        self.recover = recover
        self.restart = restart
        self.info: ObjectInfo | None = None
        self.version = ""
        self.healthy = False
        self.problem = "not checked yet"
        self.loaded: set[str] = set()  # families believed loaded (from what it last ran)
        self.heavy: str | None = None  # the heavy family among them
        self.active: list[_Ticket] = []  # submitted (or about to be) and not finished
        self.stuck: str | None = None  # a prompt that ignored an interrupt (remote: wait for it)
        self.epoch = 0  # bumped when it is found down: a health answer from before does not count
        self.counts = {"jobs": 0, "frees": 0, "lost": 0, "timeouts": 0, "switches": 0}

    def client(self, timeout: float | None = None) -> ComfyClient:
        """A client of its own for each job thread (a requests session is not meant to be shared)."""
        return ComfyClient(self.url, instance=self.name, timeout=timeout or self.request_timeout,
                           poll_interval=self.poll_interval)

    def forget_models(self) -> None:
        self.loaded.clear()
        self.heavy = None

    def __repr__(self) -> str:
        return f"ComfyInstance({self.name}, {self.url}, {'healthy' if self.healthy else self.problem})"


@dataclass(eq=False)
class _Ticket:
    job: ComfyJob
    priority: int
    seq: int
    names: dict[str, str]  # planned upload names by role
    prefix: str
    instance: ComfyInstance | None = None
    started: bool = False  # ComfyUI began it (any event for its prompt)
    free_first: bool = False
    compiled: dict[str, tuple[ObjectInfo, CompiledWorkflow | CompileError]] = field(default_factory=dict)

    def compile_for(self, instance: ComfyInstance) -> CompiledWorkflow | CompileError:
        """Compiled once per instance schema; a refreshed schema compiles again."""
        info = instance.info
        assert info is not None
        cached = self.compiled.get(instance.name)
        if cached is None or cached[0] is not info:
            try:
                result: CompiledWorkflow | CompileError = self.job.build(
                    BuildTarget(info, instance.name, self.names, self.prefix))
            except CompileError as exc:
                result = exc
            self.compiled[instance.name] = (info, result)
            cached = self.compiled[instance.name]
        return cached[1]


class _Shared:
    """State every handle of one pool shares (``with_priority`` gives another handle)."""

    def __init__(self, instances: Sequence[ComfyInstance], depth: int) -> None:
        self.instances = list(instances)
        self.depth = depth
        self.cond = threading.Condition()
        self.waiting: list[_Ticket] = []
        self.seq = 0
        self.closed = threading.Event()
        self.monitor: threading.Thread | None = None


class ComfyPool:
    def __init__(self, instances: Sequence[ComfyInstance], *, depth: int = 2, prompt_timeout: float = 1800.0,
                 interrupt_grace: float = 10.0, attempts: int = 3, wait_healthy: float = 300.0,
                 health_interval: float = 2.0, health_timeout: float = 5.0, priority: int = 0,
                 _shared: _Shared | None = None) -> None:
        if not instances and _shared is None:
            raise ValueError("a ComfyPool needs at least one instance")
        self.prompt_timeout = prompt_timeout
        self.interrupt_grace = interrupt_grace
        self.attempts = attempts  # prompts lost with an instance before the job fails
        self.wait_healthy = wait_healthy
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.priority = priority
        if _shared is not None:
            self._s = _shared
            return
        self._s = _Shared(instances, max(1, depth))
        for instance in self._s.instances:  # first look now, so the first jobs do not wait for the monitor
            self._probe(instance)
        self._s.monitor = threading.Thread(target=self._watch, name="comfy-pool-health", daemon=True)
        self._s.monitor.start()

    @classmethod
    def connect(cls, urls: Sequence[str], *, names: Sequence[str] | None = None, ready_timeout: float = 10.0,
                **options: Any) -> ComfyPool:
        """A pool of remote instances by URL; waits up to ``ready_timeout`` for at least one to answer."""
        instances = [ComfyInstance(url, names[i] if names else None) for i, url in enumerate(urls)]
        pool = cls(instances, **options)
        deadline = time.monotonic() + ready_timeout
        while not any(i.healthy for i in instances) and time.monotonic() < deadline:
            time.sleep(0.2)
            for instance in instances:
                pool._probe(instance)
        if not any(i.healthy for i in instances):
            pool.close()
            raise ComfyError("no ComfyUI instance answers: " + "; ".join(f"{i.url}: {i.problem}" for i in instances))
        return pool

    def with_priority(self, priority: int) -> ComfyPool:
        """Another handle on the same instances whose jobs are placed with ``priority`` (higher first)."""
        return ComfyPool((), prompt_timeout=self.prompt_timeout, interrupt_grace=self.interrupt_grace,
                         attempts=self.attempts, wait_healthy=self.wait_healthy, health_interval=self.health_interval,
                         health_timeout=self.health_timeout, priority=priority, _shared=self._s)

    @property
    def instances(self) -> list[ComfyInstance]:
        return list(self._s.instances)

    def pending(self) -> int:
        """Jobs waiting for an instance (nothing sent yet)."""
        with self._s.cond:
            return len(self._s.waiting)

    def min_workers(self) -> int:
        """Engine workers needed to keep every instance's queue full."""
        return len(self._s.instances) * self._s.depth

    def close(self) -> None:
        self._s.closed.set()
        with self._s.cond:
            self._s.cond.notify_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def known(self) -> list[Known]:
        """Every instance whose schemas the pool has read (down ones included: their results stand)."""
        with self._s.cond:
            return [(i.name, i.info, i.version) for i in self._s.instances if i.info is not None]

    def versions(self, job: ComfyJob) -> list[dict[str, Any]]:
        return job_versions(self.known(), job)

    def class_versions(self, class_types: frozenset[str]) -> list[dict[str, Any]]:
        return class_set_versions(self.known(), class_types)

    def stats(self) -> dict[str, dict[str, Any]]:
        with self._s.cond:
            return {i.name: {**i.counts, "healthy": i.healthy, "loaded": sorted(i.loaded)} for i in self._s.instances}

    # -----------------------------------------------------------------------------------------
    # running a job

    def run(self, job: ComfyJob, dest: Path, *, cancel: threading.Event | None = None,
            on_progress: ProgressCallback | None = None) -> JobResult:
        """Run a job on the best instance, retrying as described above; outputs are downloaded to ``dest``."""
        cancel = cancel or threading.Event()
        ticket = self._ticket(job)
        self._refuse_if_nowhere(ticket)
        attempts = losses = timeouts = 0
        rejected = False
        while True:
            instance = self._acquire(ticket, cancel)
            attempts += 1
            submitted: list[str] = []
            try:
                return self._attempt(instance, ticket, dest, cancel, on_progress, attempts, submitted)
            except InstanceLost as exc:
                self._down(instance, str(exc))
                if instance.recover is not None:
                    self._bring_back(instance, instance.recover)
                # lost before submission costs only the wait for a healthy instance (bounded all the same)
                losses += 1 if submitted else 0
                if losses >= self.attempts or attempts >= 3 * self.attempts:
                    raise InstanceLost(f"{exc} (gave up after {losses} lost prompts)", exc.errors) from None
            except ComfyTimeout as exc:
                instance.counts["timeouts"] += 1
                timeouts += 1
                self._stop_hung(instance, submitted[0] if submitted else None)
                if timeouts >= 2:
                    raise ComfyTimeout(f"{exc} (twice; gave up)", exc.errors) from None
            except PromptRejected:
                if rejected or not self._reread(instance, ticket):
                    raise
                rejected = True
            finally:
                self._release(instance, ticket)

    def _ticket(self, job: ComfyJob) -> _Ticket:
        names = {}
        for role, path in job.uploads.items():
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:32]
            names[role] = f"reelgraph/in/{digest}/{role}{Path(path).suffix.lower()}"
        with self._s.cond:
            self._s.seq += 1
            seq = self._s.seq
        priority = self.priority if job.priority is None else job.priority
        return _Ticket(job, priority, seq, names, f"reelgraph/{uuid.uuid4().hex[:12]}/out")

    def _refuse_if_nowhere(self, ticket: _Ticket) -> None:
        """No known instance can run it: refuse now, before anything is uploaded or queued."""
        with self._s.cond:
            results = [(i, ticket.compile_for(i)) for i in self._s.instances if i.info is not None]
        if not results or any(isinstance(r, CompiledWorkflow) for _, r in results):
            return
        raise _nowhere(ticket, [(i.name, r) for i, r in results if isinstance(r, CompileError)])

    def _acquire(self, ticket: _Ticket, cancel: threading.Event) -> ComfyInstance:
        s = self._s
        no_home_since: float | None = None
        with s.cond:
            ticket.instance, ticket.started, ticket.free_first = None, False, False
            s.waiting.append(ticket)
            try:
                while True:
                    self._assign()
                    if ticket.instance is not None:
                        return ticket.instance
                    if cancel.is_set():
                        raise Interrupted(f"recipe node '{ticket.job.recipe_node}': cancelled before it reached ComfyUI")
                    if s.closed.is_set():
                        raise ComfyError(f"recipe node '{ticket.job.recipe_node}': the ComfyUI pool was closed")
                    homes = [i for i in s.instances if i.healthy and isinstance(ticket.compile_for(i), CompiledWorkflow)]
                    if homes:
                        no_home_since = None
                    else:
                        known = [(i.name, r) for i in s.instances if i.info is not None
                                 for r in [ticket.compile_for(i)]]
                        if known and all(isinstance(r, CompileError) for _, r in known):
                            raise _nowhere(ticket, known)  # type: ignore[arg-type]
                        no_home_since = no_home_since or time.monotonic()
                        if time.monotonic() - no_home_since > self.wait_healthy:
                            state = "; ".join(f"{i.name}: {i.problem}" for i in s.instances if not i.healthy)
                            raise InstanceLost(f"recipe node '{ticket.job.recipe_node}': no healthy ComfyUI instance "
                                               f"for {self.wait_healthy:g} s ({state})")
                    s.cond.wait(0.1)
            finally:
                if ticket in s.waiting:
                    s.waiting.remove(ticket)

    def _attempt(self, instance: ComfyInstance, ticket: _Ticket, dest: Path, cancel: threading.Event,
                 on_progress: ProgressCallback | None, attempts: int, submitted: list[str]) -> JobResult:
        client = instance.client()
        try:
            return self._submit(client, instance, ticket, dest, cancel, on_progress, attempts, submitted)
        finally:
            client.session.close()

    def _submit(self, client: ComfyClient, instance: ComfyInstance, ticket: _Ticket, dest: Path,
                cancel: threading.Event, on_progress: ProgressCallback | None, attempts: int,
                submitted: list[str]) -> JobResult:
        if ticket.free_first:  # ComfyUI applies it after the running prompt, before ours
            client.free(unload_models=True)
            instance.counts["frees"] += 1
        # Never overwrite: the name is the content's digest, so an existing file is this file, and
        # rewriting it could tear it under a running prompt that reads it (ComfyUI keeps a same-hash file).
        names = {role: client.upload(path, subfolder=ticket.names[role].rsplit("/", 1)[0], overwrite=False)
                 for role, path in ticket.job.uploads.items()}
        compiled = ticket.compile_for(instance)
        if names != ticket.names:  # the server renamed an upload: compile with its names
            compiled = ticket.job.build(BuildTarget(instance.info, instance.name, names, ticket.prefix))  # type: ignore[arg-type]
        assert isinstance(compiled, CompiledWorkflow)
        prompt_id = str(uuid.uuid4())
        submitted.append(prompt_id)

        def progress(event: ProgressEvent) -> None:
            if not ticket.started:
                with self._s.cond:
                    ticket.started = True
                    self._s.cond.notify_all()
            if on_progress is not None:
                on_progress(event)

        extra_data = {**ticket.job.extra_data, **compiled.extra_data, **_pnginfo(compiled, instance)}
        result = client.run(compiled, prompt_id=prompt_id, on_progress=progress, timeout=self.prompt_timeout,
                            extra_data=extra_data, cancel=cancel, number=queue_number(ticket.priority))
        self._release(instance, ticket)  # the next job may be submitted while we download
        files = [client.download(output, dest) for output in result.outputs]
        instance.counts["jobs"] += 1
        return JobResult(files, result.outputs, compiled, instance.name, prompt_id, instance.version, attempts)

    def _release(self, instance: ComfyInstance, ticket: _Ticket) -> None:
        with self._s.cond:
            if ticket in instance.active:
                instance.active.remove(ticket)
                self._s.cond.notify_all()

    # -----------------------------------------------------------------------------------------
    # placement (always under the lock)

    def _assign(self) -> None:
        s = self._s
        for priority in sorted({t.priority for t in s.waiting}, reverse=True):
            level = sorted((t for t in s.waiting if t.priority == priority), key=lambda t: t.seq)
            for ticket in level:  # affinity: an instance that has the family loaded
                holders = [i for i in self._free_slots() if ticket.job.family in i.loaded and self._fits(ticket, i)]
                if holders:
                    self._give(ticket, min(holders, key=lambda i: len(i.active)))
            counts: dict[str, int] = {}
            for ticket in level:
                counts[ticket.job.family] = counts.get(ticket.job.family, 0) + 1
            for ticket in sorted(level, key=lambda t: (-counts[t.job.family], t.seq)):
                if ticket.instance is not None:
                    continue
                candidates = [i for i in self._free_slots() if self._fits(ticket, i)]
                if not candidates:
                    continue
                best = min(candidates, key=lambda i: (self._evicts(ticket, i), len(i.active), s.instances.index(i)))
                held = any(ticket.job.family in i.loaded for i in s.instances if i.healthy and i is not best)
                if held and best.active:
                    continue  # another instance has the model: take it from there unless this GPU would idle
                if self._evicts(ticket, best) and not all(t.started for t in best.active):
                    continue  # a /free now could land before a queued prompt that needs the old model
                self._give(ticket, best)

    def _free_slots(self) -> list[ComfyInstance]:
        return [i for i in self._s.instances if i.healthy and i.stuck is None and len(i.active) < self._s.depth]

    def _fits(self, ticket: _Ticket, instance: ComfyInstance) -> bool:
        return ticket.instance is None and isinstance(ticket.compile_for(instance), CompiledWorkflow)

    @staticmethod
    def _evicts(ticket: _Ticket, instance: ComfyInstance) -> bool:
        return ticket.job.heavy and instance.heavy is not None and instance.heavy != ticket.job.family

    def _give(self, ticket: _Ticket, instance: ComfyInstance) -> None:
        family = ticket.job.family
        if ticket.job.heavy and instance.heavy != family:
            if instance.heavy is not None:
                ticket.free_first = True
                instance.counts["switches"] += 1
                instance.loaded = {f for f in instance.loaded if f != instance.heavy}
            instance.heavy = family
        instance.loaded.add(family)
        ticket.instance = instance
        instance.active.append(ticket)
        self._s.waiting.remove(ticket)
        self._s.cond.notify_all()

    # -----------------------------------------------------------------------------------------
    # health

    def _watch(self) -> None:
        s = self._s
        while not s.closed.wait(self.health_interval):
            for instance in s.instances:
                self._probe(instance)

    def _probe(self, instance: ComfyInstance) -> None:
        """Health check (``/system_stats``); a newly healthy instance has its schemas re-read."""
        with self._s.cond:
            epoch, stuck, was_healthy = instance.epoch, instance.stuck, instance.healthy
        probe = instance.client(self.health_timeout)
        info, version, problem = instance.info, instance.version, ""
        try:
            stats = probe.system_stats()
            if stuck is not None:
                queue = probe.queue()
                if any(item[1] == stuck for item in queue.get("queue_running", [])):
                    problem = f"prompt {stuck} is still running after an interrupt"
                else:
                    stuck = None
            if not problem and (not was_healthy or info is None):
                info, version = probe.object_info(), str((stats.get("system") or {}).get("comfyui_version", ""))
        except ComfyError as exc:
            problem = str(exc)
        finally:
            probe.session.close()
        with self._s.cond:
            if instance.epoch != epoch:
                return  # it was found down meanwhile: this answer may predate that
            instance.stuck = stuck
            if problem:
                if instance.healthy:
                    instance.forget_models()
                instance.healthy, instance.problem = False, problem
            else:
                if not instance.healthy:
                    instance.forget_models()  # it may have restarted: nothing is loaded
                instance.info, instance.version = info, version
                instance.healthy, instance.problem = True, ""
            self._s.cond.notify_all()

    def _down(self, instance: ComfyInstance, why: str) -> None:
        with self._s.cond:
            instance.healthy, instance.problem = False, why
            instance.epoch += 1
            instance.counts["lost"] += 1
            instance.forget_models()
            self._s.cond.notify_all()

    def _stop_hung(self, instance: ComfyInstance, prompt_id: str | None) -> None:
        """Interrupt a prompt that ran out of time; an instance that does not let go is restarted
        (managed) or left out until the prompt is gone (remote)."""
        if prompt_id is None:
            return
        deadline = time.monotonic() + self.interrupt_grace
        client = instance.client()
        try:
            while time.monotonic() < deadline:
                client.cancel(prompt_id)
                queue = client.queue()
                if not any(item[1] == prompt_id for key in ("queue_running", "queue_pending")
                           for item in queue.get(key, [])):
                    return
                time.sleep(0.1)
        except (InstanceLost, ComfyHTTPError, ComfyTimeout) as exc:
            self._down(instance, str(exc))
            return
        finally:
            client.session.close()
        why = f"prompt {prompt_id} did not stop after an interrupt"
        self._down(instance, why)
        if instance.restart is not None:
            self._bring_back(instance, instance.restart)
        else:
            with self._s.cond:
                instance.stuck = prompt_id

    def _reread(self, instance: ComfyInstance, ticket: _Ticket) -> bool:
        """After ``node_errors``: fresh schemas for that instance; may the job be retried somewhere?"""
        try:
            info = instance.client().object_info()
        except ComfyError:
            return False
        with self._s.cond:
            instance.info = info
            return any(i.healthy and isinstance(ticket.compile_for(i), CompiledWorkflow) for i in self._s.instances)

    def _bring_back(self, instance: ComfyInstance, action: Callable[[], Any]) -> None:
        """Ask the supervisor to start it again; a failure stays visible as the instance's problem."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - whatever the supervisor raised, the job only waits
            with self._s.cond:
                instance.problem = f"its supervisor could not bring it back: {exc}"


# Upload names stand in for real uploads where a job is compiled only to see what it would use.
# ---------------------------------------------------------------------------------------------
# versions (keys.py): from any set of instances, live (the pool) or last seen (seen.py)

Known = tuple[str, ObjectInfo, str]  # an instance's name, schemas and ComfyUI version
_STAND_IN_UPLOADS = {"image": "reelgraph/versions/image.png", "video": "reelgraph/versions/video.mp4"}


def job_versions(known: Sequence[Known], job: ComfyJob) -> list[dict[str, Any]]:
    """What decides the job's result on each instance that could run it, besides the workflow:
    the ComfyUI version and, per custom-node pack the compiled workflow uses, a digest of the
    ``/object_info`` schemas of those classes. Distinct entries, sorted (see ``keys.py``)."""

    def classes(info: ObjectInfo, name: str) -> set[str] | None:
        try:
            compiled = job.build(BuildTarget(info, name, _STAND_IN_UPLOADS, "reelgraph/versions/out"))
        except CompileError:
            return None  # this instance cannot run it, so it cannot have made the result
        return {n["class_type"] for n in compiled.prompt.values()}

    return _distinct_versions(known, classes)


def class_set_versions(known: Sequence[Known], class_types: frozenset[str]) -> list[dict[str, Any]]:
    """``job_versions`` for a workflow of known classes (a recipe's own ComfyUI nodes): the
    instances that have every one of them."""
    return _distinct_versions(known, lambda info, _name: set(class_types) if class_types <= set(info) else None)


def _distinct_versions(known: Sequence[Known],
                       classes_on: Callable[[ObjectInfo, str], set[str] | None]) -> list[dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for name, info, version in known:
        used = classes_on(info, name)
        if used is None:
            continue
        entry = {"comfyui": version, "packs": _pack_digests(info, used)}
        entries[json.dumps(entry, sort_keys=True)] = entry
    return [entries[k] for k in sorted(entries)]


def _pack_digests(info: ObjectInfo, classes: set[str]) -> dict[str, str]:
    """Custom-node pack (folder name) -> digest of the schemas of the given classes it provides."""
    by_pack: dict[str, dict[str, Any]] = {}
    for cls in sorted(classes):
        if (pack := info[cls].pack) != "core":
            by_pack.setdefault(pack, {})[cls] = info.raw[cls]
    return {pack: hashlib.sha256(json.dumps(schemas, sort_keys=True).encode()).hexdigest()[:16]
            for pack, schemas in sorted(by_pack.items())}


def _pnginfo(compiled: CompiledWorkflow, instance: ComfyInstance) -> dict[str, Any]:
    """``extra_pnginfo`` with the prompt's UI workflow. Metadata must never cost a job: a prompt the
    exporter cannot draw (an imported workflow's oddity) is sent without it, and that is logged."""
    assert instance.info is not None
    try:
        return {"extra_pnginfo": {"workflow": ui_workflow(compiled.prompt, instance.info, compiled.model_files)}}
    except Exception as exc:  # noqa: BLE001 - any exporter failure only loses the metadata
        log.warning("no UI workflow for the prompt of %s: %s: %s", sorted(set(compiled.node_map.values())),
                    type(exc).__name__, exc)
        return {}


def queue_number(priority: int) -> float | None:
    """The ``number`` that orders a prompt in ComfyUI's own queue (lower runs first), so priority also
    holds between processes that share an instance. Priority 0 sends none: ComfyUI counts up from 0.
    Higher priorities go below every counted prompt, lower ones above; within one priority, in order
    of submission (the clock)."""
    if priority == 0:
        return None
    return -priority * 1e10 + time.time()


def _nowhere(ticket: _Ticket, refusals: list[tuple[str, CompileError]]) -> CompileError:
    if len(refusals) == 1:
        return refusals[0][1]
    errors: list[MappedError] = [e for _, r in refusals for e in r.errors]
    text = "; ".join(f"{name}: {r}" for name, r in refusals)
    return CompileError(f"no ComfyUI instance can run recipe node '{ticket.job.recipe_node}': {text}", errors)
