"""What the API does, without HTTP: validate and submit runs, execute them on the job queue,
cancel, derive edited runs, plan, and describe runs. Routes in ``app.py`` only translate.

Decisions (see also the module docs of ``store``, ``events`` and ``webhooks``):

* Identical submissions — same recipe document, template, params, outputs, force, webhook and
  metadata — made while one is queued or running attach to that run (``deduplicated``). A
  submission that differs only in metadata or webhook is a run of its own, whose node work is
  still shared: the engine executes identical work once, across runs, through the store's locks.
* A run interrupted by a shutdown or a crash stays queued/running in the store and is resumed
  on the next start as a new attempt (engine run id ``<id>-<attempt>``); what had finished comes
  back from the cache, so it is not redone.
* Cost: node events carry each execution's cost (engine/cost.py); a run's ``cost`` is their sum
  in USD, and ``plan`` estimates it per execution before anything runs.
"""

from __future__ import annotations

import copy
import fcntl
import json
import logging
import shutil
import uuid
from collections.abc import Mapping
from typing import Any

from ..engine import Engine, RunOptions
from ..engine.canonical import digest_json
from ..engine.runner import RunConfigError
from ..graphs.errors import GraphError, RecipeInvalid, json_path
from ..graphs.model import Link, LiteralObject, ParamRef, Recipe
from ..engine.comfy_groups import fuse_comfy_groups
from ..graphs.validate import BoundRecipe, bind_recipe, parse_recipe
from ..nodes.registry import NodeRegistry, default_registry
from ..nodes.types import FILE_TYPES
from . import templates, views
from .config import ServerConfig
from .errors import ApiError, invalid_recipe
from .events import NODE_EVENTS, EventHub, api_event
from .jobs import InProcessQueue, JobControl, JobQueue
from .metrics import Metrics
from .store import TERMINAL, IdempotencyConflict, RunRow, ServerStore
from .webhooks import UnsafeUrl, WebhookDispatcher, check_url, load_secret

log = logging.getLogger("reelgraph.server")


class HomeInUse(RuntimeError):
    """Another server already serves this engine home."""


class RunService:
    def __init__(self, config: ServerConfig, registry: NodeRegistry | None = None, queue: JobQueue | None = None) -> None:
        self.config = config
        config.home.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(config.home / "server.lock", "a")  # noqa: SIM115 - held for the process' life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise HomeInUse(f"another reelgraph server is using {config.home}") from None
        self.inputs_dir = config.home / "inputs"
        self.inputs_dir.mkdir(exist_ok=True)
        self.registry = registry or default_registry()
        self.engine = Engine(config.home)
        from ..comfy_workflows.cli import pool_for_run

        # ComfyUI-placed nodes run on these instances; cancelling a run interrupts its prompts
        self.comfy = pool_for_run(list(config.comfy_urls), config.home)
        self.store = ServerStore(config.home / "server.sqlite")
        self.hub = EventHub(self.store)
        self.queue: JobQueue = queue or InProcessQueue(config.workers)
        self.metrics = Metrics(self.store.count_by_status, self.queue.depth, self.queue.running)
        self.hub.listeners.append(self.metrics.on_event)
        self.webhooks = WebhookDispatcher(
            self.store,
            load_secret(config.webhook_secret, config.home),
            allow_private=config.webhook_allow_private,
            attempts=config.webhook_attempts,
            backoff=config.webhook_backoff,
            on_attempt=self.metrics.on_webhook,
        )
        self.ready = False

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.queue.start(self.execute)
        self.webhooks.start()
        for row in self.store.active_runs():  # unfinished runs of a previous process resume
            if row.status == "running":
                self.metrics.retries.labels("run_resume").inc()
            self.queue.submit(row.id)
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        self.hub.close()
        self.queue.stop(timeout=30.0)
        self.webhooks.stop()
        if self.comfy is not None:
            self.comfy.close()
        self.engine.close()
        self.store.close()
        self._lock_file.close()

    # ---- validation -----------------------------------------------------------------------------
    def resolve_source(self, recipe: Mapping[str, Any] | None, template: str | None) -> tuple[dict[str, Any], str | None]:
        """The recipe document to run: the one given, or the named template's."""
        if (recipe is None) == (template is None):
            raise ApiError(422, "invalid_request", "give exactly one of 'recipe' and 'template'",
                           [{"kind": "bad_request", "path": "body", "message": "give exactly one of 'recipe' and 'template'", "node": None}])
        if template is not None:
            try:
                return templates.load(template), template
            except ApiError as exc:
                raise ApiError(422, "invalid_request", exc.message,
                               [{"kind": "unknown_template", "path": "template", "message": exc.message, "node": None}]) from None
        assert recipe is not None
        nodes = recipe.get("nodes")
        if isinstance(nodes, Mapping) and len(nodes) > self.config.max_nodes:
            raise ApiError(413, "too_large", f"the recipe has {len(nodes)} nodes; this server accepts at most {self.config.max_nodes}")
        return dict(recipe), None

    def bind(
        self,
        document: Mapping[str, Any],
        template: str | None,
        params: Mapping[str, Any],
        outputs: list[str] | None = None,
        force: list[str] | None = None,
    ) -> BoundRecipe:
        """Parse and bind; RecipeInvalid lists every problem, as ``reelgraph validate`` does."""
        recipe = parse_recipe(document)
        if recipe.name is None:
            recipe = recipe.model_copy(update={"name": template or "api"})
        escaping = self._escaping_files(recipe, params)
        try:
            bound = bind_recipe(recipe, self.registry, dict(params), base_dir=self.inputs_dir)
            fuse_comfy_groups(bound)  # wiring ComfyUI groups cannot honour is a 422, not a failed run
        except RecipeInvalid as exc:
            raise RecipeInvalid(self._merge(exc.errors, escaping)) from None
        errors = list(escaping.values())
        for index, name in enumerate(outputs or []):
            if name not in bound.outputs:
                errors.append(GraphError("bad_option", json_path("outputs", index),
                                         f"the recipe has no output {name!r} (outputs: {', '.join(bound.outputs) or 'none'})"))
        for index, node in enumerate(force or []):
            if node not in bound.nodes:
                errors.append(GraphError("bad_option", json_path("force", index), f"the recipe has no node {node!r}", node))
        if errors:
            raise RecipeInvalid(errors)
        return bound

    def _escaping_files(self, recipe: Recipe, params: Mapping[str, Any]) -> dict[str, GraphError]:
        """File literals (and file params) of API recipes must name files inside ``<home>/inputs``:
        no absolute paths, no ``..``, no symlinks out. The server never reads other files for a client."""
        base = self.inputs_dir.resolve()
        values = {name: spec.default for name, spec in recipe.params.items() if not spec.required} | dict(params)
        errors: dict[str, GraphError] = {}
        for node_id, spec in recipe.nodes.items():
            node_type = self.registry.get(spec.type)
            for name, value in spec.inputs.items():
                port = node_type.input(name) if node_type else None
                if port is None or port.type not in FILE_TYPES or isinstance(value, Link):
                    continue
                if isinstance(value, ParamRef):
                    value = values.get(value.param)
                elif isinstance(value, LiteralObject):
                    value = value.literal
                items = value if isinstance(value, list) else [value]
                for item in items:
                    if isinstance(item, str) and not (base / item).resolve().is_relative_to(base):
                        path = json_path("nodes", node_id, "inputs", name)
                        errors[path] = GraphError(
                            "missing_file", path,
                            f"file {item!r} is outside the server's input folder; API recipes may only name files"
                            " relative to it", node_id)
        return errors

    def _merge(self, errors: list[GraphError], escaping: dict[str, GraphError]) -> list[GraphError]:
        """Binding errors with an escaping path's error in place of binding's own for that input,
        and without the server's folder names in messages."""
        merged = [escaping.get(e.path, e) if e.kind in ("missing_file", "wrong_type") else e for e in errors]
        merged += [e for path, e in escaping.items() if path not in {m.path for m in merged}]
        folder = str(self.inputs_dir)
        return [GraphError(e.kind, e.path, e.message.replace(folder, "the server's input folder"), e.node)
                if folder in e.message else e for e in merged]

    def prepare(self, body: Any) -> tuple[dict[str, Any], str | None, BoundRecipe]:
        document, template = self.resolve_source(body.recipe, body.template)
        try:
            bound = self.bind(document, template, body.params, getattr(body, "outputs", None), getattr(body, "force", None))
        except RecipeInvalid as exc:
            self.metrics.submissions.labels("invalid").inc()
            raise invalid_recipe(exc) from None
        return document, template, bound

    # ---- submission -----------------------------------------------------------------------------
    def submit(
        self,
        document: dict[str, Any],
        template: str | None,
        bound: BoundRecipe,
        *,
        outputs: list[str] | None,
        force: list[str],
        webhook_url: str | None,
        metadata: dict[str, Any],
        scope: str,
        priority: int = 0,
        idempotency_key: str | None,
        parent: str | None = None,
    ) -> tuple[str, str]:
        if webhook_url is not None:
            try:
                check_url(webhook_url, self.config.webhook_allow_private)
            except UnsafeUrl as exc:
                raise ApiError(422, "invalid_request", f"webhook_url {exc}",
                               [{"kind": "bad_webhook", "path": "webhook_url", "message": str(exc), "node": None}]) from None
        params = dict(bound.params)
        options: dict[str, Any] = {"outputs": outputs, "force": sorted(set(force))}
        if priority:  # absent means 0 (rows stored before runs had a priority)
            options["priority"] = priority
        submission = digest_json({"recipe": document, "template": template, "params": params, "options": options,
                                  "webhook_url": webhook_url, "metadata": metadata, "parent": parent})
        idempotency = (scope, idempotency_key, submission) if idempotency_key else None
        try:
            run_id, how = self.store.insert_run(
                uuid.uuid4().hex[:16],
                recipe=document, recipe_name=str(bound.recipe.name), template=template, params=params, options=options,
                webhook_url=webhook_url, metadata=metadata, submission=submission, parent=parent,
                idempotency=idempotency, dedupe=True,
            )
        except IdempotencyConflict as exc:
            raise ApiError(409, "conflict", f"the Idempotency-Key was already used for a different request (run {exc.run_id})") from None
        self.metrics.submissions.labels(how).inc()
        if how == "created":
            self.hub.publish(run_id, {"event": "run_queued", "status": "queued"})
            self.queue.submit(run_id)
        return run_id, how

    def patch(
        self, run_id: str, node_id: str, inputs: Mapping[str, Any] | None, regenerate: bool, scope: str, idempotency_key: str | None
    ) -> tuple[str, str]:
        """Submit ``run_id``'s recipe with one node's inputs changed and/or its nonce bumped, as a new
        run (same template, params, options, webhook and metadata); the original stays as it was."""
        row = self.get_row(run_id)
        document = copy.deepcopy(row.recipe)
        node = document.get("nodes", {}).get(node_id)
        if not isinstance(node, dict):
            raise ApiError(404, "not_found", f"the recipe of run {run_id} has no node {node_id!r}")
        if inputs:
            node["inputs"] = {**(node.get("inputs") or {}), **inputs}
        if regenerate:
            node_type = self.registry.get(str(node.get("type")))
            if node_type is not None and node_type.deterministic:
                raise ApiError(422, "invalid_request",
                               f"node {node_id!r} ({node_type.id}) is deterministic: regenerating it would give the same result",
                               [{"kind": "bad_option", "path": "regenerate", "message": "the node type is deterministic", "node": node_id}])
            node["nonce"] = int(node.get("nonce", 0)) + 1
        outputs, force = row.options.get("outputs"), row.options.get("force") or []
        try:
            bound = self.bind(document, row.template, row.params, outputs, force)
        except RecipeInvalid as exc:
            raise invalid_recipe(exc) from None
        return self.submit(
            document, row.template, bound, outputs=outputs, force=force, webhook_url=row.webhook_url,
            metadata=row.metadata, scope=scope, idempotency_key=idempotency_key, parent=run_id,
            priority=int(row.options.get("priority", 0)),
        )

    # ---- cancel ---------------------------------------------------------------------------------
    def cancel(self, run_id: str) -> str:
        row = self.get_row(run_id)
        if row.status in TERMINAL:
            raise ApiError(409, "conflict", f"run {run_id} has already finished ({row.status})")
        if self.store.cancel_queued(run_id):
            self._announce(run_id, "cancelled", None)
            return "cancelled"
        if self.queue.cancel(run_id):
            return "cancelling"
        return self.get_row(run_id).status  # it finished meanwhile

    # ---- execution (job-queue worker threads) ----------------------------------------------------
    def execute(self, run_id: str, control: JobControl) -> None:
        attempt = self.store.start_attempt(run_id)
        if attempt is None:  # cancelled or finished while queued
            return
        row = self.get_row(run_id)
        for earlier in range(1, attempt):  # work dirs a killed attempt left behind
            shutil.rmtree(self.engine.home / "work" / _engine_run_id(run_id, earlier), ignore_errors=True)
        outputs_option = row.options.get("outputs")
        try:
            bound = self.bind(row.recipe, row.template, row.params, outputs_option, row.options.get("force"))
        except RecipeInvalid as exc:  # e.g. a plugin that was installed at submission is gone
            self._finished(run_id, "failed", None, {"step": "validate", "cause": str(exc)})
            return
        types = {node_id: node.spec.type for node_id, node in bound.nodes.items()}

        def on_event(event: dict[str, Any]) -> None:
            kind = event["event"]
            if kind == "run_finished":
                return  # published below, once outputs are stored
            if kind == "run_started":
                self.hub.publish(run_id, {"event": "run_started", "status": "running", "attempt": attempt, "nodes": event.get("nodes")})
                return
            translated = api_event(event)
            translated.setdefault("type", types.get(str(event.get("node"))))
            translated["attempt"] = attempt
            self.hub.publish(run_id, translated)

        options = RunOptions(
            # keep every GPU queue full, as `reelgraph run` does
            workers=max(self.config.node_workers, self.comfy.min_workers() + 2) if self.comfy else self.config.node_workers,
            comfy=self.comfy.with_priority(int(row.options.get("priority", 0))) if self.comfy else None,
            force=self._force_for(run_id, row, attempt),
            outputs=tuple(outputs_option) if outputs_option is not None else None,
            on_event=on_event,
            run_id=_engine_run_id(run_id, attempt),
            cancel=control.cancel,
        )
        try:
            result = self.engine.run(bound, options)
        except RunConfigError as exc:
            self._finished(run_id, "failed", None, {"step": "plan", "cause": str(exc)})
            return
        except Exception:
            if control.shutdown:
                self._interrupted(run_id)
                return
            log.exception("run %s failed inside the engine", run_id)
            self._finished(run_id, "failed", None, {"step": "engine", "cause": "internal error; see the server log"})
            return
        if control.shutdown and result.status == "cancelled":
            self._interrupted(run_id)
            return
        self._finished(run_id, result.status, {name: views.output_links(value) for name, value in result.outputs.items()})

    def _force_for(self, run_id: str, row: RunRow, attempt: int) -> frozenset[str]:
        """Forced nodes execute once per run, not once per attempt."""
        force = set(row.options.get("force") or [])
        if attempt > 1 and force:
            done = {e["node"] for e in self.store.events(run_id, kinds=["node_finished"], limit=1_000_000)}
            force -= done
        return frozenset(force)

    def _interrupted(self, run_id: str) -> None:
        self.store.requeue(run_id)
        self.hub.publish(run_id, {"event": "run_interrupted", "status": "queued",
                                  "reason": "the server is shutting down; the run resumes when it starts again"})

    def _finished(self, run_id: str, status: str, outputs: dict[str, Any] | None, error: dict[str, Any] | None = None) -> None:
        if self.store.finish_run(run_id, status, outputs, error):
            self._announce(run_id, status, error)

    def _announce(self, run_id: str, status: str, error: dict[str, Any] | None) -> None:
        """A run reached its terminal status: tell the streams, then the webhook."""
        self.hub.publish(run_id, {"event": "run_finished", "status": status, "error": error})
        row = self.get_row(run_id)
        if row.webhook_url:
            payload = json.dumps({"event": "run.finished", "run": self.describe(row, with_nodes=False)}, separators=(",", ":"))
            self.webhooks.schedule(run_id, row.webhook_url, payload)

    # ---- reading --------------------------------------------------------------------------------
    def get_row(self, run_id: str) -> RunRow:
        row = self.store.get_run(run_id)
        if row is None:
            raise ApiError(404, "not_found", f"no run {run_id!r}")
        return row

    def describe(self, row: RunRow, with_nodes: bool = True) -> dict[str, Any]:
        events = self.store.events(row.id, kinds=NODE_EVENTS, limit=10_000_000)
        return views.describe(row, events, self.store.webhook(row.id) if row.webhook_url else None, with_nodes)


def _engine_run_id(run_id: str, attempt: int) -> str:
    return run_id if attempt == 1 else f"{run_id}-{attempt}"
