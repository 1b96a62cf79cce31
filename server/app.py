"""The FastAPI app: routes under ``/v1`` that translate HTTP to ``RunService`` calls.

OpenAPI: ``/v1/openapi.json`` (docs at ``/v1/docs``). The WebSocket event stream shares the
SSE route's path (``/v1/runs/{id}/events``); OpenAPI cannot describe it, see its docstring.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Response, WebSocket
from fastapi.responses import FileResponse, StreamingResponse
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from ..graphs.errors import RecipeInvalid
from . import artifacts, templates, views
from .auth import Authority
from .config import ServerConfig
from .errors import COMMON_RESPONSES, ApiError, ErrorBody, install
from .limits import BodyLimit
from .metrics import CONTENT_TYPE
from .models import (
    CancelAccepted,
    Health,
    NodePatch,
    PlanRequest,
    PlanView,
    RecipeSource,
    RunAccepted,
    RunList,
    RunRequest,
    RunStatus,
    RunView,
    TemplateList,
    TemplateView,
    ValidateView,
)
from .service import RunService
from .store import TERMINAL

API_DESCRIPTION = """Submit recipe graphs (or a template and params), follow their progress, fetch outputs.

Authentication: `Authorization: Bearer <token>` on every `/v1` route when the server has tokens
(event streams also accept `?access_token=`). Errors: `{"error": {"code", "message", "errors": [...]}}`.
"""

RunId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Run id")]
NOT_FOUND = {404: {"model": ErrorBody, "description": "not found"}}


def create_app(config: ServerConfig, service: RunService | None = None) -> FastAPI:
    service = service or RunService(config)
    authority = Authority(config.tokens, config.rate, config.burst)

    def admit(connection: HTTPConnection) -> str:
        return authority.admit(connection)

    def admit_stream(connection: HTTPConnection) -> str:
        return authority.admit(connection, allow_query=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(service.stop)

    app = FastAPI(
        title="reelgraph Engine API",
        version="1",
        description=API_DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    install(app)
    app.add_middleware(BodyLimit, limit=config.max_body)

    api = APIRouter(prefix="/v1", dependencies=[Depends(admit)], responses=COMMON_RESPONSES)
    streams = APIRouter(prefix="/v1", dependencies=[Depends(admit_stream)], responses=COMMON_RESPONSES)

    def accepted(run_id: str, how: str) -> dict[str, Any]:
        row = service.get_row(run_id)
        return {
            "id": run_id, "status": row.status, "deduplicated": how == "deduplicated", "replayed": how == "replayed",
            "parent_run": row.parent, "links": {"self": f"/v1/runs/{run_id}", "events": f"/v1/runs/{run_id}/events"},
        }

    # ---- runs -----------------------------------------------------------------------------------
    @api.post("/runs", status_code=202, response_model=RunAccepted, responses={409: {"model": ErrorBody, "description": "idempotency key reused"}})
    def submit_run(
        body: RunRequest,
        response: Response,
        scope: str = Depends(admit),
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> dict[str, Any]:
        """Submit a recipe, or a template and params. Returns at once with the run id.

        Identical submissions while one is queued or running return that run (`deduplicated`).
        An `Idempotency-Key` header returns the run its first use created (`replayed`)."""
        document, template, bound = service.prepare(body)
        run_id, how = service.submit(
            document, template, bound, outputs=body.outputs, force=body.force, priority=body.priority,
            webhook_url=body.webhook_url, metadata=body.metadata, scope=scope, idempotency_key=idempotency_key,
        )
        response.headers["Location"] = f"/v1/runs/{run_id}"
        return accepted(run_id, how)

    @api.get("/runs", response_model=RunList)
    def list_runs(
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        status: RunStatus | None = None,
        before: Annotated[float | None, Query(description="only runs submitted before this unix time (paging)")] = None,
    ) -> dict[str, Any]:
        """Runs, newest first."""
        return {"runs": [views.summary(row) for row in service.store.list_runs(limit, status, before)]}

    @api.get("/runs/{run_id}", response_model=RunView, responses=NOT_FOUND)
    def get_run(run_id: RunId) -> dict[str, Any]:
        """Status, per-node and per-element state, cache hits, timings, cost, errors and output links."""
        return service.describe(service.get_row(run_id))

    @api.post("/runs/{run_id}/cancel", status_code=202, response_model=CancelAccepted,
              responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "already finished"}})
    def cancel_run(run_id: RunId) -> dict[str, Any]:
        """Cancel: nothing new starts; running nodes see their cancel flag."""
        return {"id": run_id, "status": service.cancel(run_id)}

    @api.patch("/runs/{run_id}/nodes/{node_id}", status_code=202, response_model=RunAccepted, responses=NOT_FOUND)
    def patch_node(
        run_id: RunId,
        node_id: Annotated[str, Path(min_length=1, max_length=200)],
        body: NodePatch,
        scope: str = Depends(admit),
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> dict[str, Any]:
        """A new run of this run's recipe with one node's inputs changed and/or regenerated; only
        what that makes dirty executes. The original run is unchanged."""
        if not body.inputs and not body.regenerate:
            raise ApiError(422, "invalid_request", "give 'inputs' to change, or 'regenerate': true",
                           [{"kind": "bad_request", "path": "body", "message": "nothing to change", "node": node_id}])
        new_id, how = service.patch(run_id, node_id, body.inputs, body.regenerate, scope, idempotency_key)
        return accepted(new_id, how)

    @streams.get("/runs/{run_id}/events", response_class=StreamingResponse, responses={
        **NOT_FOUND, 200: {"description": "Server-sent events", "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
    async def run_events(
        run_id: RunId,
        after: Annotated[int | None, Query(ge=0, description="resume after this event id")] = None,
        last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    ) -> StreamingResponse:
        """Live events as SSE (`id:` is the event id; resume with `Last-Event-ID` or `?after=`).
        The stream ends after `run_finished`. Event names: run_queued, run_started, node_started,
        node_progress, node_finished (executed), node_cached, node_failed, node_skipped,
        run_interrupted, run_finished.

        The same path upgraded to a WebSocket (`ws://…/v1/runs/{id}/events?after=N`) sends each
        event as one JSON text message and closes with 1000 after `run_finished`."""
        service.get_row(run_id)
        start = after if after is not None else int(last_event_id) if (last_event_id or "").isdigit() else 0

        async def stream() -> AsyncIterator[str]:
            async for event in service.hub.follow(run_id, start, lambda: _finished(service, run_id)):
                if event is None:
                    yield ": keep-alive\n\n"
                else:
                    yield f"id: {event['id']}\nevent: {event['event']}\ndata: {json.dumps(event)}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.websocket("/v1/runs/{run_id}/events")
    async def run_events_ws(websocket: WebSocket, run_id: str) -> None:
        await websocket.accept()
        try:
            authority.admit(websocket, allow_query=True)
            service.get_row(run_id)
            text = websocket.query_params.get("after", "0")
            if not text.isdigit():
                raise ApiError(422, "invalid_request", "'after' must be a non-negative integer")
        except ApiError as exc:
            await websocket.send_json({"error": {"code": exc.code, "message": exc.message, "errors": exc.errors}})
            await websocket.close(code=4000 + exc.status)
            return

        async def pump() -> None:
            async for event in service.hub.follow(run_id, int(text), lambda: _finished(service, run_id)):
                if event is not None:
                    await websocket.send_text(json.dumps(event))

        async def until_disconnect() -> None:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass

        tasks = [asyncio.create_task(pump()), asyncio.create_task(until_disconnect())]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if tasks[0] in done and tasks[0].exception() is None:
            await websocket.close(code=1000)
        elif tasks[0] in done and not isinstance(tasks[0].exception(), (WebSocketDisconnect, RuntimeError)):
            raise tasks[0].exception()  # type: ignore[misc]

    # ---- plan, validate ---------------------------------------------------------------------------
    @api.post("/plan", response_model=PlanView)
    def plan(body: PlanRequest) -> dict[str, Any]:
        """What a run would execute, what is cached (and why), and what it would cost, per
        execution and in total (USD at the prices in providers.toml), without running anything."""
        _, _, bound = service.prepare(body)
        entries = service.engine.plan(bound, tuple(body.outputs) if body.outputs is not None else None, frozenset(body.force))
        counts: dict[str, int] = {"cached": 0, "run": 0, "waits": 0}
        for entry in entries:
            counts[entry.status] = counts.get(entry.status, 0) + 1
        steps = [entry.to_json() for entry in entries]
        return {"steps": steps, "counts": counts, **views.plan_cost(steps)}

    @api.post("/validate", response_model=ValidateView)
    def validate(body: RecipeSource) -> dict[str, Any]:
        """Check a recipe (or template) and params; every problem at once, as `reelgraph validate --json`."""
        document, template = service.resolve_source(body.recipe, body.template)
        try:
            bound = service.bind(document, template, body.params)
        except RecipeInvalid as exc:
            return {"valid": False, "errors": [error.to_json() for error in exc.errors]}
        return {"valid": True, "nodes": len(bound.nodes), "outputs": list(bound.outputs)}

    # ---- templates, schema ----------------------------------------------------------------------
    @api.get("/templates", response_model=TemplateList)
    def list_templates() -> dict[str, Any]:
        return {"templates": templates.all_templates()}

    @api.get("/templates/{name}", response_model=TemplateView, responses=NOT_FOUND)
    def get_template(name: Annotated[str, Path(max_length=100)]) -> dict[str, Any]:
        """A template's documentation, parameter schema and recipe."""
        return templates.info(name, full=True)

    @api.get("/schema/recipe")
    def recipe_schema() -> dict[str, Any]:
        """JSON Schema of a recipe document."""
        from ..graphs.model import recipe_json_schema

        return recipe_json_schema()

    # ---- artifacts ------------------------------------------------------------------------------
    @api.get("/artifacts/{digest}", response_class=FileResponse, responses={
        **NOT_FOUND, 206: {"description": "Partial content"}, 416: {"model": ErrorBody, "description": "range not satisfiable"},
        200: {"description": "The artifact's bytes", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    def get_artifact(
        digest: Annotated[str, Path(max_length=80, description="sha256:<64 hex>")],
        range_header: Annotated[str | None, Header(alias="range", max_length=1000)] = None,
    ) -> FileResponse:
        """The bytes of an artifact, with its sniffed content type; supports Range requests."""
        artifacts.check_digest(digest)
        path = service.engine.store.blob_path(digest)
        if not path.is_file():
            raise ApiError(404, "not_found", f"no artifact {digest}")
        artifacts.check_range(range_header, path.stat().st_size)
        return FileResponse(path, media_type=artifacts.sniff(path), headers={
            "Cache-Control": "private, max-age=31536000, immutable", "ETag": f'"{digest}"'})

    app.include_router(api)
    app.include_router(streams)

    # ---- operations -----------------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, include_in_schema=True)
    def healthz() -> dict[str, Any]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}})
    def readyz(response: Response) -> dict[str, Any]:
        """Ready once unfinished runs are resubmitted and the store answers."""
        try:
            service.store.ping()
        except Exception:
            response.status_code = 503
            return {"status": "store unavailable"}
        if not service.ready:
            response.status_code = 503
            return {"status": "starting"}
        return {"status": "ready", "queue_depth": service.queue.depth()}

    @app.get("/metrics", response_class=Response, dependencies=[Depends(admit)],
             responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}, **COMMON_RESPONSES})
    def metrics() -> Response:
        """Prometheus metrics."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    return app


def _finished(service: RunService, run_id: str) -> bool:
    row = service.store.get_run(run_id)
    return row is None or row.status in TERMINAL

