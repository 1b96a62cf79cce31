"""A ComfyUI-protocol server for tests, written from ``reference/comfyui.md`` (ComfyUI v0.26).

Same routes (bare and ``/api``), WebSocket events in the same order and to the same sockets,
the same validation (``schema.check_prompt``) and error JSON, the same history/jobs shapes.
Nodes run as CPU stand-ins: loaders return tokens (and take a configurable time to "load" a
model that is not loaded yet), samplers sleep per step and report progress, savers write small
real files (ffmpeg mp4, Pillow PNG) that ``/view`` serves, with the prompt and the
``extra_pnginfo`` workflow embedded as ComfyUI does it (PNG text chunks, MP4 tags, VHS's
``comment`` tag and first-frame PNG; ``--disable-metadata`` turns it off).

Faults are set by constructor arguments or ``POST /admin/faults``: ``crash_on`` (the process
exits when that node starts), ``hang_on`` (the node never finishes, even on interrupt, unless
``hang_interruptible``; ``hang_times`` limits it to the first N hits), ``fail_on`` (the node
raises), ``node_seconds``/``step_seconds`` (slow nodes), ``model_load_seconds`` (per model-file
substring) and ``max_loaded_models`` (a VRAM stand-in). ``GET /admin/state`` shows the loaded
models, load counts per file and a timeline of executed prompts; ``POST /admin/loaded_models``
sets the loaded models, ``POST /admin/object_info`` swaps the served schemas (``{"path": F}``:
models removed or added behind a client's back), ``POST /admin/drop_sockets`` closes every
WebSocket. Comfy.org API nodes (``comfy_api_nodes.*``) fail as in ComfyUI unless the prompt's
``extra_data`` carried ``api_key_comfy_org`` or ``auth_token_comfy_org``.

Run standalone: ``python -m reelgraph.comfy_workflows.testserver --object-info F --root DIR --port 0``;
it prints ComfyUI's own readiness line ``To see the GUI go to: http://127.0.0.1:PORT``. It also
takes ComfyUI's ``main.py`` flags that a supervisor passes (``--listen``, ``--input-directory``,
``--output-directory``, ``--temp-directory``, ``--disable-auto-launch``, ``--disable-metadata``), so
a ``main.py`` that calls :func:`main` stands in for a ComfyUI checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import json
import math
import mimetypes
import os
import re
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffmpeg
from aiohttp import WSMsgType, web
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..nodes.builtin.ffmpeg_tools import run_ffmpeg
from .schema import (
    MODEL_FOLDERS,
    SELF_VALIDATED,
    ObjectInfo,
    check_prompt,
    folder_files,
    looks_like_model_file,
)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SAMPLERS = frozenset({"KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced", "SamplerCustom"})
INTERPOLATORS = frozenset({"RIFE VFI", "FrameInterpolate"})
WEIGHT_TYPES = frozenset({"MODEL", "CLIP", "VAE", "CLIP_VISION", "INTERP_MODEL"})  # inputs whose weights must be loaded
HISTORY_MESSAGES = frozenset({"execution_start", "execution_cached", "execution_success", "execution_error",
                              "execution_interrupted"})
MAX_SIDE = 64  # stand-in media are tiny whatever size the workflow asks for


def _ms() -> int:
    return int(time.time() * 1000)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


@dataclass
class Faults:
    crash_on: str | None = None  # class_type or node id
    hang_on: str | None = None
    hang_interruptible: bool = False  # a slow node that still honours /interrupt, not a stuck kernel
    hang_times: int = 0  # 0: every time; N: only the first N prompts that reach the node hang
    fail_on: dict[str, str] = field(default_factory=dict)  # class_type or node id -> exception message
    node_seconds: dict[str, float] = field(default_factory=dict)  # class_type -> seconds (per step for samplers)
    step_seconds: float = 0.01
    model_load_seconds: dict[str, float] = field(default_factory=dict)  # model-file substring -> seconds
    max_loaded_models: int = 0  # 0: no limit; else the oldest is unloaded first

    def update(self, changes: Mapping[str, Any]) -> None:
        for key, value in changes.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown fault {key!r}")
            setattr(self, key, value)


@dataclass
class QueueItem:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    private: dict[str, Any] = field(default_factory=dict)  # Comfy.org credentials, never shown

    def as_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class NodeError(Exception):
    def __init__(self, message: str, kind: str = "RuntimeError") -> None:
        super().__init__(message)
        self.kind = kind


class _Interrupted(Exception):
    pass


class _Crash(BaseException):
    pass


class ComfyTestServer:
    def __init__(self, object_info: ObjectInfo | Mapping[str, Any] | str | Path, root: str | Path, *,
                 version: str = "0.26.0", faults: Faults | None = None, exit_on_crash: bool = False,
                 dirs: Mapping[str, str | Path] | None = None, disable_metadata: bool = False) -> None:
        if isinstance(object_info, (str, Path)):
            object_info = ObjectInfo.load(object_info)
        self.info = object_info if isinstance(object_info, ObjectInfo) else ObjectInfo(object_info)
        self.root = Path(root).resolve()
        self.dirs = {kind: self.root / kind for kind in ("input", "output", "temp")}
        self.dirs.update({kind: Path(path).resolve() for kind, path in (dirs or {}).items()})
        for path in self.dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        self.version = version
        self.faults = faults or Faults()
        self.exit_on_crash = exit_on_crash
        self.disable_metadata = disable_metadata  # ComfyUI's --disable-metadata
        self.queue: list[tuple[float, int, QueueItem]] = []
        self.created: dict[str, int] = {}
        self.started: dict[str, int] = {}
        self.finished: dict[str, int] = {}
        self.running: QueueItem | None = None
        self.current_node: str | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.cache: dict[str, tuple[list[Any], dict[str, Any] | None]] = {}
        self.loaded_models: list[str] = []
        self.load_seconds_total = 0.0
        self.loads: dict[str, int] = {}  # model file -> times loaded
        self.timeline: list[dict[str, Any]] = []  # one entry per executed prompt (wall clock)
        self.hang_hits = 0
        self.content = 0  # 24 bits that tint saved stand-in media: different generations, different bytes
        self.interrupt_requested = False
        self.pending_free: dict[str, bool] = {}
        self.counter = 0
        self.sequence = 0
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -----------------------------------------------------------------------------------------
    # lifecycle

    def app(self) -> web.Application:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        routes: list[tuple[str, str, Any]] = [
            ("GET", "/ws", self.h_ws),
            ("GET", "/prompt", self.h_prompt_info),
            ("POST", "/prompt", self.h_prompt),
            ("GET", "/queue", self.h_queue),
            ("POST", "/queue", self.h_queue_post),
            ("POST", "/interrupt", self.h_interrupt),
            ("POST", "/free", self.h_free),
            ("GET", "/history", self.h_history),
            ("GET", "/history/{prompt_id}", self.h_history_one),
            ("POST", "/history", self.h_history_post),
            ("GET", "/object_info", self.h_object_info),
            ("GET", "/object_info/{node_class}", self.h_object_info_one),
            ("GET", "/system_stats", self.h_system_stats),
            ("GET", "/features", self.h_features),
            ("GET", "/models", self.h_models),
            ("GET", "/models/{folder}", self.h_models_folder),
            ("POST", "/upload/image", self.h_upload),
            ("GET", "/view", self.h_view),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)
        if _version(self.version) >= (0, 6):
            app.router.add_get("/api/jobs", self.h_jobs)
            app.router.add_get("/api/jobs/{job_id}", self.h_job)
        if _version(self.version) >= (0, 26):
            app.router.add_post("/api/jobs/cancel", self.h_jobs_cancel)
            app.router.add_post("/api/jobs/{job_id}/cancel", self.h_job_cancel)
        app.router.add_post("/admin/faults", self.h_admin_faults)
        app.router.add_get("/admin/state", self.h_admin_state)
        app.router.add_post("/admin/loaded_models", self.h_admin_loaded)
        app.router.add_post("/admin/drop_sockets", self.h_admin_drop)
        app.router.add_post("/admin/object_info", self.h_admin_object_info)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, _app: web.Application) -> None:
        self._wake = asyncio.Event()
        self._worker = asyncio.create_task(self._work())

    async def _on_cleanup(self, _app: web.Application) -> None:
        if self._worker is not None:
            self._worker.cancel()
        for ws in list(self.sockets.values()):
            await ws.close()

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner = web.AppRunner(self.app(), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.port

    def start(self, host: str = "127.0.0.1", port: int = 0) -> ComfyTestServer:
        """Serve from a thread with its own event loop (for tests in the same process)."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.serve(host, port))
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"comfy-testserver-{id(self)}", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("test server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._loop.is_closed():
            return
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            try:
                future.result(10)
            except Exception:  # noqa: BLE001 - already half down (crashed): stop the loop anyway
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ComfyTestServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -----------------------------------------------------------------------------------------
    # WebSocket

    async def h_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self.sockets.pop(sid, None)  # reconnecting with the same id replaces the old socket
        self.sockets[sid] = ws
        try:
            await ws.send_json({"type": "status", "data": {"status": self._exec_info(), "sid": sid}})
            if self.running is not None and self.current_node is not None and self.running.extra_data.get("client_id") == sid:
                await ws.send_json({"type": "executing", "data": {"node": self.current_node, "display_node": self.current_node,
                                                                  "prompt_id": self.running.prompt_id}})
            first = True
            async for message in ws:
                if message.type == WSMsgType.TEXT and first:
                    try:
                        data = json.loads(message.data)
                    except ValueError:
                        data = {}
                    if isinstance(data, dict) and data.get("type") == "feature_flags":
                        await ws.send_json({"type": "feature_flags", "data": self._features()})
                first = False
        finally:
            if self.sockets.get(sid) is ws:
                del self.sockets[sid]
        return ws

    async def _send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        targets = list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
        for ws in targets:
            try:
                await ws.send_json({"type": event, "data": data})
            except (ConnectionError, RuntimeError):
                pass

    def _exec_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": len(self.queue) + (1 if self.running else 0)}}

    async def _status(self) -> None:
        await self._send("status", {"status": self._exec_info()}, None)

    @staticmethod
    def _features() -> dict[str, Any]:
        return {"supports_preview_metadata": True, "max_upload_size": 100 * 1024 * 1024,
                "extension": {"manager": {"supports_v4": True}}, "node_replacements": True, "assets": False}

    # -----------------------------------------------------------------------------------------
    # /prompt and queue

    async def h_prompt_info(self, _request: web.Request) -> web.Response:
        return web.json_response(self._exec_info())

    async def h_prompt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict) or "prompt" not in body:
            return _prompt_error("no_prompt", "No prompt provided", "No prompt provided")
        prompt = body["prompt"]
        if not isinstance(prompt, dict):
            return _prompt_error("invalid_prompt", "Invalid prompt", "the prompt must be an object")
        prompt_id = body.get("prompt_id")
        if prompt_id is None:
            prompt_id = str(uuid.uuid4())
        elif _version(self.version) >= (0, 25) and not (isinstance(prompt_id, str) and UUID_RE.match(prompt_id)):
            return _prompt_error("invalid_prompt_id", "prompt_id must be a valid UUID",
                                 "prompt_id must be a UUID string in canonical lowercase hyphenated form; "
                                 "omit it to let the server generate one")
        prompt_id = str(prompt_id)
        targets = body.get("partial_execution_targets")
        check = check_prompt(prompt, self.info, targets, self._custom_checks())
        if check.error is not None:
            error = check.error
            if error["type"] == "missing_node_type" and _version(self.version) < (0, 12):
                cls = error["extra_info"]["class_type"]
                error = {"type": "invalid_prompt", "message": f"Cannot execute because node {cls} does not exist.",
                         "details": error["details"], "extra_info": {}}
            return web.json_response({"error": error, "node_errors": check.node_errors}, status=400)
        if "number" in body:
            number = float(body["number"])
        else:
            number = -self.counter if body.get("front") else self.counter
        self.counter += 1
        extra = dict(body.get("extra_data") or {})
        private = {key: extra.pop(key) for key in ("auth_token_comfy_org", "api_key_comfy_org") if key in extra}
        if body.get("client_id") is not None:
            extra["client_id"] = body["client_id"]
        extra["create_time"] = _ms()
        item = QueueItem(number, prompt_id, prompt, extra, check.good_outputs, private)
        self.sequence += 1
        heapq.heappush(self.queue, (number, self.sequence, item))
        self.created[prompt_id] = extra["create_time"]
        assert self._wake is not None
        self._wake.set()
        await self._status()
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": check.node_errors})

    def _custom_checks(self) -> dict[str, Any]:
        def exists(kind: str) -> Any:
            def check(_node_id: str, _cls: str, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
                name = next((n for n in ("image", "file", "video", "audio") if n in inputs), None)
                if name is None or isinstance(inputs[name], list):
                    return []
                if self._annotated_path(str(inputs[name]), "input") is None:
                    return [(name, f"Invalid {kind} file: {inputs[name]}")]
                return []
            return check
        return {"LoadImage": exists("image"), "LoadVideo": exists("video"), "VHS_LoadVideo": exists("video"),
                "LoadAudio": exists("audio")}

    def _annotated_path(self, name: str, default_type: str) -> Path | None:
        kind = default_type
        match = re.match(r"^(.*) \[(input|output|temp)\]$", name)
        if match:
            name, kind = match.groups()
        try:
            path = (self.dirs[kind] / name).resolve()
            return path if path.is_relative_to(self.dirs[kind]) and path.is_file() else None
        except (OSError, ValueError):  # not a usable file name at all
            return None

    async def h_queue(self, _request: web.Request) -> web.Response:
        pending = [entry[2].as_list() for entry in sorted(self.queue)]
        running = [self.running.as_list()] if self.running else []
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def h_queue_post(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if body.get("clear"):
            self.queue.clear()
        if body.get("delete"):
            doomed = set(body["delete"])
            self.queue = [entry for entry in self.queue if entry[2].prompt_id not in doomed]
            heapq.heapify(self.queue)
        await self._status()
        return web.Response(status=200)

    async def h_interrupt(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        wanted = body.get("prompt_id")
        if self.running is not None and (wanted is None or wanted == self.running.prompt_id):
            self.interrupt_requested = True
        return web.Response(status=200)

    async def h_free(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self.pending_free = {"unload_models": bool(body.get("unload_models")), "free_memory": bool(body.get("free_memory"))}
        if self.running is None:
            self._apply_free()
        return web.Response(status=200)

    def _apply_free(self) -> None:
        if self.pending_free.get("unload_models") or self.pending_free.get("free_memory"):
            self.loaded_models.clear()
        if self.pending_free.get("free_memory"):
            self.cache.clear()
        self.pending_free = {}

    # -----------------------------------------------------------------------------------------
    # history and jobs

    async def h_history(self, request: web.Request) -> web.Response:
        # As ComfyUI's get_history: offset counts from the oldest; without one, the last max_items.
        items = list(self.history.items())
        limit = int(request.query["max_items"]) if request.query.get("max_items") else None
        offset = int(request.query.get("offset", -1))
        if offset < 0:
            offset = max(0, len(items) - limit) if limit is not None else 0
        items = items[offset: offset + limit if limit is not None else None]
        return web.json_response(dict(items))

    async def h_history_one(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    async def h_history_post(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if body.get("clear"):
            self.history.clear()
        for prompt_id in body.get("delete", []) or []:
            self.history.pop(prompt_id, None)
        return web.Response(status=200)

    def _job(self, prompt_id: str, full: bool) -> dict[str, Any] | None:
        pending = next((e[2] for e in self.queue if e[2].prompt_id == prompt_id), None)
        entry = self.history.get(prompt_id)
        if self.running is not None and self.running.prompt_id == prompt_id:
            item, status = self.running, "in_progress"
        elif pending is not None:
            item, status = pending, "pending"
        elif entry is not None:
            item = QueueItem(*entry["prompt"])
            messages = [m[0] for m in entry["status"]["messages"]]
            status = ("completed" if entry["status"]["status_str"] == "success"
                      else "cancelled" if "execution_interrupted" in messages else "failed")
        else:
            return None
        outputs = entry["outputs"] if entry else {}
        preview = next(({**f, "nodeId": node, "mediaType": key} for node, ui in outputs.items()
                        for key, files in ui.items() if isinstance(files, list)
                        for f in files if isinstance(f, dict) and "filename" in f), None)
        job: dict[str, Any] = {
            "id": prompt_id, "status": status, "priority": item.number, "create_time": self.created.get(prompt_id),
            "execution_start_time": self.started.get(prompt_id), "execution_end_time": self.finished.get(prompt_id),
            "outputs_count": sum(len(f) for ui in outputs.values() for f in ui.values() if isinstance(f, list)),
            "preview_output": preview,
            "workflow_id": ((item.extra_data.get("extra_pnginfo") or {}).get("workflow") or {}).get("id"),
        }
        if status == "failed" and entry:
            error = next((m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"), None)
            job["execution_error"] = error
        if full:
            job["outputs"] = outputs
            job["execution_status"] = entry["status"] if entry else None
            job["workflow"] = {"prompt": item.prompt, "extra_data": item.extra_data}
        return job

    def _all_job_ids(self) -> list[str]:
        ids = list(self.history)
        if self.running is not None:
            ids.append(self.running.prompt_id)
        ids += [e[2].prompt_id for e in sorted(self.queue)]
        return ids

    async def h_jobs(self, request: web.Request) -> web.Response:
        query = request.query
        jobs = [job for pid in self._all_job_ids() if (job := self._job(pid, False)) is not None]
        if query.get("status"):
            wanted = set(query["status"].split(","))
            jobs = [job for job in jobs if job["status"] in wanted]
        if query.get("workflow_id"):
            jobs = [job for job in jobs if job["workflow_id"] == query["workflow_id"]]
        if query.get("sort_by") == "execution_duration":
            def key(job: dict[str, Any]) -> float:
                start, end = job["execution_start_time"], job["execution_end_time"]
                return (end - start) if start and end else 0
        else:
            def key(job: dict[str, Any]) -> float:
                return job["create_time"] or 0
        jobs.sort(key=key, reverse=query.get("sort_order", "desc") != "asc")
        offset = int(query.get("offset", 0) or 0)
        limit = int(query["limit"]) if query.get("limit") else None
        page = jobs[offset: offset + limit if limit is not None else None]
        return web.json_response({"jobs": page, "pagination": {
            "offset": offset, "limit": limit, "total": len(jobs),
            "has_more": limit is not None and offset + limit < len(jobs)}})

    async def h_job(self, request: web.Request) -> web.Response:
        job = self._job(request.match_info["job_id"], True)
        if job is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(job)

    def _cancel(self, prompt_id: str) -> bool:
        if self.running is not None and self.running.prompt_id == prompt_id:
            self.interrupt_requested = True
            return True
        before = len(self.queue)
        self.queue = [e for e in self.queue if e[2].prompt_id != prompt_id]
        heapq.heapify(self.queue)
        return len(self.queue) != before

    async def h_job_cancel(self, request: web.Request) -> web.Response:
        return web.json_response({"cancelled": self._cancel(request.match_info["job_id"])})

    async def h_jobs_cancel(self, request: web.Request) -> web.Response:
        ids = (await _json_body(request)).get("job_ids") or []
        invalid = [i for i in ids if not (isinstance(i, str) and UUID_RE.match(i))]
        if invalid:
            return web.json_response({"error": "job_ids contains invalid id(s)", "invalid_ids": invalid}, status=400)
        return web.json_response({"cancelled": [i for i in ids if self._cancel(i)]})

    # -----------------------------------------------------------------------------------------
    # schemas, stats, models

    async def h_object_info(self, _request: web.Request) -> web.Response:
        return web.json_response(self.info.raw)

    async def h_object_info_one(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        return web.json_response({name: self.info.raw[name]} if name in self.info.raw else {})

    async def h_system_stats(self, _request: web.Request) -> web.Response:
        system: dict[str, Any] = {"os": sys.platform, "ram_total": 25276514304, "ram_free": 23783084032,
                                  "comfyui_version": self.version, "python_version": sys.version,
                                  "pytorch_version": "stand-in", "embedded_python": False,
                                  "argv": ["main.py", "--cpu"]}
        if _version(self.version) >= (0, 26):
            system["deploy_environment"] = "test-server"
        device = {"name": "cpu", "type": "cpu", "index": None, "vram_total": 25276514304, "vram_free": 23783084032,
                  "torch_vram_total": 25276514304, "torch_vram_free": 23783084032}
        return web.json_response({"system": system, "devices": [device]})

    async def h_features(self, _request: web.Request) -> web.Response:
        return web.json_response(self._features())

    async def h_models(self, _request: web.Request) -> web.Response:
        return web.json_response(sorted(MODEL_FOLDERS))

    async def h_models_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        return web.json_response(folder_files(self.info, folder))

    # -----------------------------------------------------------------------------------------
    # files

    async def h_upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("image")
        if not isinstance(upload, web.FileField):
            return web.Response(status=400)
        kind = str(form.get("type") or "input")
        if kind not in self.dirs:
            return web.Response(status=400)
        subfolder = str(form.get("subfolder") or "")
        folder = (self.dirs[kind] / subfolder).resolve()
        if not folder.is_relative_to(self.dirs[kind]):
            return web.Response(status=400)
        name = os.path.basename(upload.filename or "")
        if not name:
            return web.Response(status=400)
        data = upload.file.read()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        overwrite = str(form.get("overwrite", "")).lower() in ("true", "1")
        if target.exists() and not overwrite:
            stem, suffix = os.path.splitext(name)
            index = 1
            while target.exists() and hashlib.sha256(target.read_bytes()).digest() != hashlib.sha256(data).digest():
                target = folder / f"{stem} ({index}){suffix}"
                index += 1
        if not target.exists() or overwrite:
            target.write_bytes(data)
        return web.json_response({"name": target.name, "subfolder": subfolder, "type": kind})

    async def h_view(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        filename = query.get("filename", "")
        kind = query.get("type", "output") or "output"
        match = re.match(r"^(.*) \[(input|output|temp)\]$", filename)
        if match:
            filename, kind = match.groups()
        if not filename or filename.startswith("/") or ".." in filename or kind not in self.dirs:
            return web.Response(status=400)
        folder = (self.dirs[kind] / query.get("subfolder", "")).resolve()
        if not folder.is_relative_to(self.dirs[kind]):
            return web.Response(status=403)
        path = folder / filename
        if not path.is_file():
            return web.Response(status=404)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if content_type in ("text/html", "text/javascript", "application/javascript", "text/css"):
            content_type = "application/octet-stream"
        return web.FileResponse(path, headers={"Content-Type": content_type,
                                               "Content-Disposition": f'filename="{filename}"'})

    # -----------------------------------------------------------------------------------------
    # admin (test control)

    async def h_admin_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults.update(await _json_body(request))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.faults.__dict__)

    async def h_admin_state(self, _request: web.Request) -> web.Response:
        return web.json_response({"loaded_models": self.loaded_models, "load_seconds_total": self.load_seconds_total,
                                  "loads": self.loads, "timeline": self.timeline, "pid": os.getpid(),
                                  "running": self.running.prompt_id if self.running else None,
                                  "current_node": self.current_node, "pending": len(self.queue),
                                  "faults": self.faults.__dict__, "version": self.version})

    async def h_admin_drop(self, _request: web.Request) -> web.Response:
        """Close every WebSocket (a proxy or network hiccup); prompts keep running."""
        sockets = list(self.sockets.values())
        self.sockets.clear()
        for ws in sockets:
            await ws.close()
        return web.json_response({"dropped": len(sockets)})

    async def h_admin_object_info(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self.info = ObjectInfo.load(body["path"])
        return web.json_response({"classes": len(self.info)})

    async def h_admin_loaded(self, request: web.Request) -> web.Response:
        self.loaded_models = list((await _json_body(request)).get("loaded_models", []))
        return web.json_response({"loaded_models": self.loaded_models})

    # -----------------------------------------------------------------------------------------
    # execution

    async def _work(self) -> None:
        assert self._wake is not None
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            _, _, item = heapq.heappop(self.queue)
            try:
                await self._execute(item)
            except _Crash:
                await self._crash()
                return
            except Exception:  # noqa: BLE001 - a bug here must not stop the queue silently
                traceback.print_exc()
            finally:
                self.running = None
                self.current_node = None
                if self.pending_free:
                    self._apply_free()
            await self._status()

    async def _crash(self) -> None:
        if self.exit_on_crash:
            os._exit(17)  # what a ComfyUI process killed mid-prompt looks like from outside
        # In-process: drop every connection and stop listening.
        if self._runner is not None:
            asyncio.get_running_loop().create_task(self._runner.cleanup())

    async def _execute(self, item: QueueItem) -> None:
        self.running = item
        self.interrupt_requested = False
        prompt_id = item.prompt_id
        client = item.extra_data.get("client_id")
        messages: list[list[Any]] = []
        self.started[prompt_id] = _ms()
        began, loading = time.time(), self.load_seconds_total
        await self._status()

        async def emit(event: str, data: dict[str, Any]) -> None:
            if event in HISTORY_MESSAGES:
                messages.append([event, data])
            if event in ("status", "execution_interrupted"):
                await self._send(event, data, None)
            elif event in ("progress", "progress_state"):
                await self._send(event, data, client)
            elif client is not None:
                await self._send(event, data, client)

        values: dict[str, list[Any]] = {}
        outputs: dict[str, dict[str, Any]] = {}
        executed: list[str] = []
        order = _execution_order(item.prompt, item.outputs)
        node_id = order[0]
        success = False
        try:
            signatures = self._signatures(item.prompt, order)
            cached = [n for n in order if signatures[n] in self.cache]
            await emit("execution_start", {"prompt_id": prompt_id, "timestamp": _ms()})
            await emit("execution_cached", {"nodes": cached, "prompt_id": prompt_id, "timestamp": _ms()})
            for node_id in order:
                node = item.prompt[node_id]
                if signatures[node_id] in self.cache:
                    values[node_id], ui = self.cache[signatures[node_id]]
                    if ui:
                        outputs[node_id] = ui
                        await emit("executed", {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id})
                    continue
                if self.interrupt_requested:
                    raise _Interrupted
                self.current_node = node_id
                await emit("progress_state", {"prompt_id": prompt_id, "nodes": {node_id: {
                    "value": 0.0, "max": 1.0, "state": "running", "node_id": node_id, "prompt_id": prompt_id,
                    "display_node_id": node_id, "parent_node_id": None, "real_node_id": node_id}}})
                await emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
                inputs = {k: (values[v[0]][v[1]] if _is_link(v) else v) for k, v in node.get("inputs", {}).items()}
                # what the stand-in media look like depends on what was generated upstream, as in ComfyUI
                upstream = "".join(signatures[str(v[0])] for v in node.get("inputs", {}).values() if _is_link(v))
                self.content = int(hashlib.sha256(upstream.encode()).hexdigest()[:6], 16)
                result, ui = await self._run_node(node_id, node["class_type"], inputs, emit, item)
                values[node_id] = result
                self.cache[signatures[node_id]] = (result, ui)
                executed.append(node_id)
                if ui:
                    outputs[node_id] = ui
                    await emit("executed", {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id})
            success = True
            self._record(item, outputs, "success", messages)
            await emit("execution_success", {"prompt_id": prompt_id, "timestamp": _ms()})
        except _Interrupted:
            await emit("execution_interrupted", {"prompt_id": prompt_id, "node_id": node_id,
                                                 "node_type": item.prompt[node_id]["class_type"],
                                                 "executed": executed, "timestamp": _ms()})
        except Exception as exc:  # noqa: BLE001 - NodeError, or a stand-in bug reported the same way
            if not isinstance(exc, NodeError):
                traceback.print_exc()
                exc = NodeError(str(exc), type(exc).__name__)
            node = item.prompt[node_id]
            await emit("execution_error", {
                "prompt_id": prompt_id, "node_id": node_id, "node_type": node["class_type"], "executed": executed,
                "exception_message": str(exc), "exception_type": exc.kind,
                "traceback": traceback.format_exception(exc)[-3:],
                "current_inputs": {k: [v if isinstance(v, (str, int, float, bool)) else str(v)]
                                   for k, v in node.get("inputs", {}).items()},
                "current_outputs": list(values), "timestamp": _ms()})
        finally:
            self.finished[prompt_id] = _ms()
            self.timeline.append({"prompt_id": prompt_id, "start": began, "end": time.time(),
                                  "load_seconds": round(self.load_seconds_total - loading, 6),
                                  "status": "success" if success else "error"})
        if not success:
            self._record(item, outputs, "error", messages)
        # "done": sent after history is written, whatever the outcome.
        await emit("executing", {"node": None, "prompt_id": prompt_id})

    def _record(self, item: QueueItem, outputs: dict[str, Any], status: str, messages: list[list[Any]]) -> None:
        self.history[item.prompt_id] = {
            "prompt": item.as_list(),
            "outputs": outputs,
            "status": {"status_str": status, "completed": status == "success", "messages": messages},
            "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in outputs},
        }
        while len(self.history) > 10000:
            self.history.pop(next(iter(self.history)))

    def _signatures(self, prompt: Mapping[str, Any], order: list[str]) -> dict[str, str]:
        """ComfyUI's cache key: class, constant inputs, upstream signatures (+ input file content)."""
        signatures: dict[str, str] = {}
        for node_id in order:
            node = prompt[node_id]
            parts: list[Any] = [node["class_type"]]
            for name, value in sorted(node.get("inputs", {}).items()):
                if _is_link(value):
                    parts.append([name, signatures[str(value[0])], value[1]])
                else:
                    parts.append([name, value])
                    if name in SELF_VALIDATED.get(node["class_type"], ()) and isinstance(value, str) and (
                            path := self._annotated_path(value, "input")) is not None:
                        parts.append(hashlib.sha256(path.read_bytes()).hexdigest())
            signatures[node_id] = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
        return signatures

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def _run_node(self, node_id: str, cls: str, inputs: dict[str, Any], emit: Any,
                        item: QueueItem) -> tuple[list[Any], dict[str, Any] | None]:
        faults = self.faults
        prompt_id = item.prompt_id
        if faults.crash_on in (cls, node_id):
            raise _Crash
        if faults.hang_on in (cls, node_id) and (not faults.hang_times or self.hang_hits < faults.hang_times):
            self.hang_hits += 1
            if not faults.hang_interruptible:
                await asyncio.Event().wait()  # a stuck GPU kernel: interrupt does not reach it
            while not self.interrupt_requested:
                await asyncio.sleep(0.02)
            raise _Interrupted
        message = faults.fail_on.get(node_id, faults.fail_on.get(cls))
        if message is not None:
            raise NodeError(message)
        schema = self.info[cls]
        if schema.python_module.startswith("comfy_api_nodes") and not (
                item.private.get("api_key_comfy_org") or item.private.get("auth_token_comfy_org")):
            # what comfy_api_nodes raises on the proxy's 401
            raise NodeError("Unauthorized: Please login first to use this node.", "Exception")
        await self._load_models(inputs)
        if cls in SAMPLERS:
            steps = self._sampler_steps(cls, inputs)
            per_step = faults.node_seconds.get(cls, faults.step_seconds)
            for step in range(1, steps + 1):
                if self.interrupt_requested:
                    raise _Interrupted
                await self._pause(per_step)
                await emit("progress", {"value": step, "max": steps, "prompt_id": prompt_id, "node": node_id})
        else:
            await self._pause(faults.node_seconds.get(cls, 0.0))
        try:
            return await self._stand_in(node_id, cls, inputs, list(schema.outputs), item)
        except NodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a node raising is an execution_error, as in ComfyUI
            raise NodeError(str(exc), type(exc).__name__) from exc

    async def _load_models(self, inputs: Mapping[str, Any]) -> None:
        """Models a node uses: file names it loads, and the files behind MODEL/CLIP/VAE/... inputs
        (a cached loader's output still needs its weights back in VRAM). Least recently used go
        first when more than ``max_loaded_models`` are loaded."""
        used = [v for v in inputs.values() if looks_like_model_file(v)]
        used += [v["model"] for v in inputs.values() if isinstance(v, dict) and v.get("type") in WEIGHT_TYPES
                 and looks_like_model_file(v.get("model"))]
        for value in used:
            if value in self.loaded_models:
                self.loaded_models.remove(value)
                self.loaded_models.append(value)
                continue
            seconds = next((s for key, s in self.faults.model_load_seconds.items() if key in value), 0.0)
            await self._pause(seconds)
            self.load_seconds_total += seconds
            self.loads[value] = self.loads.get(value, 0) + 1
            self.loaded_models.append(value)
            limit = self.faults.max_loaded_models
            if limit and len(self.loaded_models) > limit:
                del self.loaded_models[: len(self.loaded_models) - limit]

    @staticmethod
    def _sampler_steps(cls: str, inputs: Mapping[str, Any]) -> int:
        if cls == "SamplerCustomAdvanced" or cls == "SamplerCustom":
            sigmas = inputs.get("sigmas")
            return int(sigmas.get("steps", 1)) if isinstance(sigmas, dict) else 1
        steps = int(inputs.get("steps", 1))
        if cls == "KSamplerAdvanced":
            return max(0, min(steps, int(inputs.get("end_at_step", steps))) - int(inputs.get("start_at_step", 0)))
        return steps

    async def _stand_in(self, node_id: str, cls: str, inputs: dict[str, Any], types: list[Any],
                        item: QueueItem) -> tuple[list[Any], dict[str, Any] | None]:
        def token(kind: Any, **extra: Any) -> dict[str, Any]:
            return {"type": kind if isinstance(kind, str) else "COMBO", "node": node_id, **extra}

        frames = _frames_of(inputs)
        if cls in ("LoadImage", "LoadImageOutput"):
            path = self._annotated_path(str(inputs.get("image", "")), "input")
            if path is None:
                raise NodeError(f"Invalid image file: {inputs.get('image')}", "FileNotFoundError")
            with Image.open(path) as image:
                width, height = image.size
            return [token("IMAGE", frames=1, width=width, height=height), token("MASK")], None
        if cls in ("LoadVideo", "VHS_LoadVideo"):
            path = self._annotated_path(str(inputs.get("file", inputs.get("video", ""))), "input")
            if path is None:
                raise NodeError("video file not found", "FileNotFoundError")
            info = await asyncio.to_thread(_probe_video, path)
            images = token("IMAGE", **info)
            if cls == "LoadVideo":
                return [token("VIDEO", images=images, fps=info["fps"])], None
            return [images, info["frames"], token("AUDIO"), token("VHS_VIDEOINFO", **info)], None
        if cls == "GetVideoComponents":
            video = inputs["video"]
            return [video["images"], token("AUDIO"), float(video["fps"]), 8][: len(types)], None
        if cls == "BasicScheduler":
            return [token("SIGMAS", steps=int(inputs.get("steps", 1)))], None
        if cls in INTERPOLATORS:
            multiplier = int(inputs.get("multiplier", 2))
            source = inputs.get("frames", inputs.get("images")) or {}
            n = int(source.get("frames", 1))
            return [{**source, "node": node_id, "frames": (n - 1) * multiplier + 1}], None
        if cls == "KlingImage2VideoNode":  # the Comfy.org proxy's answer: a 24 fps clip of 5 or 10 s
            seconds = int(str(inputs.get("duration", "5")))
            width, height = {"16:9": (1280, 720), "9:16": (720, 1280)}.get(str(inputs.get("aspect_ratio")), (960, 960))
            images = token("IMAGE", frames=seconds * 24, width=width, height=height)
            return [token("VIDEO", images=images, fps=24.0), f"kling-{uuid.uuid4().hex[:8]}", str(seconds)], None
        if cls == "CreateVideo":
            return [token("VIDEO", images=inputs["images"], fps=float(inputs.get("fps", 30)))], None
        if cls == "SaveVideo":
            video = inputs["video"]
            ui = await self._save_video(video["images"], float(video["fps"]), str(inputs["filename_prefix"]), core=True,
                                        metadata=self._metadata(item))
            return [video][: len(types)], ui
        if cls == "VHS_VideoCombine":
            ui = await self._save_video(inputs["images"], float(inputs.get("frame_rate", 8)),
                                        str(inputs.get("filename_prefix", "AnimateDiff")), core=False,
                                        fmt=str(inputs.get("format", "video/h264-mp4")),
                                        save_output=bool(inputs.get("save_output", True)),
                                        metadata=self._metadata(item),
                                        video_metadata=bool(inputs.get("save_metadata", True)))
            return [token("VHS_FILENAMES")], ui
        if cls in ("SaveImage", "PreviewImage"):
            kind = "output" if cls == "SaveImage" else "temp"
            prefix = str(inputs.get("filename_prefix", "ComfyUI")) if cls == "SaveImage" else "ComfyUI_temp"
            images = inputs["images"]
            saved = await asyncio.to_thread(self._save_pngs, images, prefix, kind, self._metadata(item))
            return [images][: len(types)], {"images": saved}
        # Generic stand-in: latents and decoded images carry the requested shape along; weights
        # (MODEL, CLIP, ...) carry their file through patches (ModelSamplingSD3, LoRAs).
        result = []
        for kind in types:
            if kind in ("LATENT", "IMAGE"):
                result.append(token(kind, **frames))
                continue
            model = next((v for v in inputs.values() if looks_like_model_file(v)), None)
            model = next((v.get("model") for v in inputs.values() if isinstance(v, dict) and v.get("type") == kind
                          and v.get("model")), model)
            result.append(token(kind, model=model))
        return result, None

    def _target(self, prefix: str, kind: str) -> tuple[Path, str, str]:
        """ComfyUI's get_save_image_path: (folder, subfolder, file stem) for a filename_prefix."""
        base = self.dirs[kind]
        subfolder, stem = os.path.split(os.path.normpath(prefix))
        folder = (base / subfolder).resolve()
        if not folder.is_relative_to(base):
            raise NodeError("Saving image outside the output folder is not allowed.", "Exception")
        folder.mkdir(parents=True, exist_ok=True)
        return folder, subfolder, stem

    @staticmethod
    def _next_counter(folder: Path, stem: str) -> int:
        pattern = re.compile(re.escape(stem) + r"_(\d{5})")
        found = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
        return max(found, default=0) + 1

    def _metadata(self, item: QueueItem) -> dict[str, str]:
        """What ComfyUI's savers embed: ``prompt`` and every ``extra_pnginfo`` key, as JSON text."""
        if self.disable_metadata:
            return {}
        extra = item.extra_data.get("extra_pnginfo")
        extra = extra if isinstance(extra, Mapping) else {}
        return {"prompt": json.dumps(item.prompt), **{str(k): json.dumps(v) for k, v in extra.items()}}

    def _save_pngs(self, images: Mapping[str, Any], prefix: str, kind: str,
                   metadata: Mapping[str, str]) -> list[dict[str, Any]]:
        folder, subfolder, stem = self._target(prefix, kind)
        width, height = _tiny(images)
        counter = self._next_counter(folder, stem)
        saved = []
        for index in range(int(images.get("frames", 1))):
            name = f"{stem}_{counter + index:05}_.png"
            red, green, blue = (self.content >> 16) & 255, (self.content >> 8) & 255, self.content & 255
            Image.new("RGB", (width, height), ((red + index * 40) % 256, green, blue)).save(
                folder / name, pnginfo=_png_text(metadata))
            saved.append({"filename": name, "subfolder": subfolder, "type": kind})
        return saved

    async def _save_video(self, images: Mapping[str, Any], fps: float, prefix: str, core: bool,
                          fmt: str = "video/h264-mp4", save_output: bool = True,
                          metadata: Mapping[str, str] | None = None, video_metadata: bool = True) -> dict[str, Any]:
        """Core SaveVideo tags the file with ``prompt`` and the extra_pnginfo keys; VHS puts them,
        as one JSON object, in the ``comment`` tag (when the format's ``save_metadata`` is on) and
        in the first-frame PNG it writes beside the video (unless the workflow's
        ``extra.VHS_MetadataImage`` is false)."""
        metadata = metadata or {}
        kind = "output" if save_output else "temp"
        folder, subfolder, stem = self._target(prefix, kind)
        counter = self._next_counter(folder, stem)
        extension = {"image/gif": "gif", "image/webp": "webp", "video/webm": "webm"}.get(fmt, "mp4")
        name = f"{stem}_{counter:05}_.{extension}" if core else f"{stem}_{counter:05}.{extension}"
        width, height = _tiny(images)
        if core:
            tags = dict(metadata)
        else:
            tags = {"comment": json.dumps({k: json.loads(v) for k, v in metadata.items()})} \
                if metadata and video_metadata else {}
        await asyncio.to_thread(_write_video, folder / name, int(images.get("frames", 1)), fps, width, height,
                                self.content % 360, tags)
        entry = {"filename": name, "subfolder": subfolder, "type": kind}
        if core:
            return {"images": [entry], "animated": [True]}
        first_frame = f"{stem}_{counter:05}.png"
        workflow = json.loads(metadata.get("workflow", "{}"))
        image_metadata = (workflow.get("extra") or {}).get("VHS_MetadataImage", True) if isinstance(workflow, dict) else True
        Image.new("RGB", (width, height), (20, 90, 160)).save(
            folder / first_frame, pnginfo=_png_text(metadata if image_metadata is not False else {}))
        return {"gifs": [{**entry, "format": fmt, "frame_rate": fps, "workflow": first_frame,
                          "fullpath": str(folder / name)}]}


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _frames_of(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The shape a latent/image stand-in carries: from size inputs, else from upstream tokens."""
    if "width" in inputs and "height" in inputs and not isinstance(inputs["width"], dict):
        return {"width": int(inputs["width"]), "height": int(inputs["height"]),
                "frames": int(inputs.get("length", inputs.get("batch_size", 1)))}
    for name in ("samples", "latent_image", "latent", "image", "images", "start_image"):
        value = inputs.get(name)
        if isinstance(value, dict) and "frames" in value:
            return {k: value[k] for k in ("width", "height", "frames") if k in value}
    return {"width": 64, "height": 64, "frames": 1}


def _tiny(images: Mapping[str, Any]) -> tuple[int, int]:
    width, height = int(images.get("width", 64)), int(images.get("height", 64))
    scale = MAX_SIDE / max(width, height, 1)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _write_video(path: Path, frames: int, fps: float, width: int, height: int, hue: int = 0,
                 tags: Mapping[str, str] | None = None) -> None:
    rate = f"{fps:g}"
    source = ffmpeg.input(f"testsrc2=size={width}x{height}:rate={rate}", f="lavfi").filter("hue", h=hue)
    options: dict[str, Any] = {"frames:v": max(1, frames)}
    if path.suffix == ".mp4":
        options.update(vcodec="libx264", pix_fmt="yuv420p", preset="ultrafast")
    run_ffmpeg(source.output(str(path), **options), f"write the stand-in video {path.name}")
    if tags:
        _tag_video(path, tags)


def _tag_video(path: Path, tags: Mapping[str, str]) -> None:
    """Container tags as ComfyUI writes them (mp4: ``movflags=use_metadata_tags``, so any key is kept)."""
    tagged = path.with_name(f".tagged-{path.name}")
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(path), "-map", "0",
               "-c", "copy"]
    for key, value in tags.items():
        command += ["-metadata", f"{key}={value}"]
    if path.suffix == ".mp4":
        command += ["-movflags", "use_metadata_tags"]
    done = subprocess.run([*command, str(tagged)], capture_output=True, text=True, check=False)
    if done.returncode:
        raise NodeError(f"could not tag {path.name}: {done.stderr.strip()[-300:]}")
    tagged.replace(path)


def _png_text(metadata: Mapping[str, str]) -> PngInfo | None:
    if not metadata:
        return None
    info = PngInfo()
    for key, value in metadata.items():
        info.add_text(key, value)
    return info


def _probe_video(path: Path) -> dict[str, Any]:
    stream = next(s for s in ffmpeg.probe(str(path))["streams"] if s["codec_type"] == "video")
    num, den = (int(x) for x in stream.get("r_frame_rate", "16/1").split("/"))
    fps = num / den if den else 16.0
    frames = int(stream.get("nb_frames") or math.ceil(float(stream.get("duration", 1)) * fps))
    return {"frames": frames, "width": int(stream["width"]), "height": int(stream["height"]), "fps": fps}


def _execution_order(prompt: Mapping[str, Any], outputs: list[str]) -> list[str]:
    """Ancestors of the outputs, dependencies first (validation already refused cycles)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for value in prompt[node_id].get("inputs", {}).values():
            if _is_link(value):
                visit(str(value[0]))
        order.append(node_id)

    for output in outputs:
        visit(output)
    return order


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _prompt_error(kind: str, message: str, details: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message, "details": details, "extra_info": {}},
                              "node_errors": {}}, status=400)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ComfyUI-protocol test server with CPU stand-in nodes")
    parser.add_argument("--object-info", required=True, help="an /object_info dump to serve and validate against")
    parser.add_argument("--root", default=".", help="folder for input/, output/ and temp/ (default: here)")
    parser.add_argument("--host", "--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--version", default="0.26.0", help="ComfyUI version whose behaviour to follow")
    parser.add_argument("--faults", default="{}", help="JSON object of Faults fields")
    # ComfyUI main.py flags a supervisor passes; --temp-directory gets "temp" appended, as in ComfyUI.
    parser.add_argument("--input-directory")
    parser.add_argument("--output-directory")
    parser.add_argument("--temp-directory")
    parser.add_argument("--disable-auto-launch", action="store_true")
    parser.add_argument("--disable-metadata", action="store_true")
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        print(f"test server: ignoring ComfyUI options {' '.join(ignored)}", file=sys.stderr, flush=True)
    faults = Faults()
    faults.update(json.loads(args.faults))
    dirs = {kind: Path(path) for kind, path in (("input", args.input_directory), ("output", args.output_directory))
            if path}
    if args.temp_directory:
        dirs["temp"] = Path(args.temp_directory) / "temp"
    server = ComfyTestServer(args.object_info, args.root, version=args.version, faults=faults, exit_on_crash=True,
                             dirs=dirs, disable_metadata=args.disable_metadata)

    async def run() -> None:
        port = await server.serve(args.host, args.port)
        print(f"To see the GUI go to: http://{args.host}:{port}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
