"""A client for one ComfyUI instance: submit a workflow, follow it, collect its files.

Protocol (reference/comfyui.md §1, §6.4): we pick the ``prompt_id`` (canonical UUID) and the
``client_id``, open the WebSocket before posting (events are not buffered), treat
``executing {node: null}`` / ``execution_error`` / ``execution_interrupted`` for our prompt as
terminal, then read ``/history/{id}`` and gather files from every output key. If the socket drops,
we poll ``/history`` and ``/queue``; a server that stops answering is reported as lost.

HTTP goes through our own ``requests`` session rather than the providers' ``request`` helper:
ComfyUI's 400 answers carry ``node_errors`` we must read, and retrying a POST /prompt on 5xx
could queue the same work twice.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import websocket

from .compiler import CompiledWorkflow
from .errors import (
    ComfyHTTPError,
    ComfyTimeout,
    ExecutionFailed,
    InstanceLost,
    Interrupted,
    MappedError,
    PromptRejected,
    map_execution_error,
    map_prompt_errors,
    summary,
)
from .schema import ObjectInfo


@dataclass(frozen=True)
class ProgressEvent:
    """``kind``: ``executing`` (a node started), ``progress`` (a step: ``value`` of ``max``),
    ``cached`` (nodes served from ComfyUI's cache) or ``executed`` (a node produced outputs)."""

    prompt_id: str
    kind: str
    comfy_node: str | None
    recipe_node: str | None
    class_type: str | None = None
    value: int = 0
    max: int = 0
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputFile:
    comfy_node: str
    recipe_node: str | None
    key: str  # the ui key it came from: images, gifs, videos, audio, ...
    filename: str
    subfolder: str
    type: str
    extra: Mapping[str, Any] = field(default_factory=dict)  # format, frame_rate, fullpath, ...


@dataclass
class RunResult:
    prompt_id: str
    outputs: list[OutputFile]
    history: dict[str, Any]
    files: list[Path] = field(default_factory=list)  # downloaded copies, when asked for


ProgressCallback = Callable[[ProgressEvent], None]


class ComfyClient:
    def __init__(self, base_url: str, *, instance: str | None = None, timeout: float = 30.0,
                 poll_interval: float = 0.5, lost_after: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.instance = instance or urlsplit(self.base_url).netloc
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.lost_after = lost_after  # consecutive failed polls before the instance counts as lost
        self.session = requests.Session()

    # -----------------------------------------------------------------------------------------
    # HTTP

    def _http(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.ConnectionError as exc:
            raise InstanceLost(f"ComfyUI instance {self.instance} at {self.base_url} is not answering "
                               f"({type(exc).__name__} on {method} {path.split('?')[0]})") from None
        except requests.Timeout:
            raise ComfyTimeout(f"ComfyUI instance {self.instance} did not answer {method} {path.split('?')[0]} "
                               f"within {self.timeout:g} s") from None

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http(method, path, **kwargs)
        if response.status_code >= 400:
            raise ComfyHTTPError(f"ComfyUI instance {self.instance}: {method} {path.split('?')[0]} answered "
                                 f"HTTP {response.status_code}: {response.text[:200].strip() or response.reason}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ComfyHTTPError(f"ComfyUI instance {self.instance}: {method} {path} did not answer JSON") from None

    def object_info(self) -> ObjectInfo:
        return ObjectInfo(self._json("GET", "/api/object_info"))

    def system_stats(self) -> dict[str, Any]:
        return self._json("GET", "/api/system_stats")

    def models(self, folder: str | None = None) -> list[str]:
        """Model folder names, or the files of one folder (exact strings for combo inputs)."""
        return self._json("GET", "/api/models" + (f"/{folder}" if folder else ""))

    def queue(self) -> dict[str, Any]:
        return self._json("GET", "/api/queue")

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        return (self._json("GET", f"/api/history/{prompt_id}") or {}).get(prompt_id)

    def job(self, prompt_id: str) -> dict[str, Any] | None:
        response = self._http("GET", f"/api/jobs/{prompt_id}")
        return response.json() if response.status_code == 200 else None

    def interrupt(self, prompt_id: str | None = None) -> None:
        self._json("POST", "/api/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    def cancel(self, prompt_id: str) -> None:
        """Stop one prompt: interrupt it if it runs, take it off the queue if it waits (idempotent)."""
        response = self._http("POST", f"/api/jobs/{prompt_id}/cancel")  # v0.26: both in one call
        if response.status_code == 200:
            return
        queue = self.queue()
        if any(item[1] == prompt_id for item in queue.get("queue_running", [])):
            self.interrupt(prompt_id)
        elif any(item[1] == prompt_id for item in queue.get("queue_pending", [])):
            self._json("POST", "/api/queue", json={"delete": [prompt_id]})

    def free(self, unload_models: bool = True, free_memory: bool = False) -> None:
        self._json("POST", "/api/free", json={"unload_models": unload_models, "free_memory": free_memory})

    def upload(self, path: Path, *, subfolder: str = "", kind: str = "input", overwrite: bool = True) -> str:
        """Upload any file (image, video, audio) and return the name to put in a loader input."""
        with Path(path).open("rb") as handle:
            answer = self._json("POST", "/api/upload/image", files={"image": (Path(path).name, handle)},
                                data={"type": kind, "subfolder": subfolder, "overwrite": "true" if overwrite else "false"})
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]

    def download(self, output: OutputFile, dest_dir: Path) -> Path:
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / output.filename
        if target.exists():  # two output nodes may reuse a name in different subfolders
            target = dest_dir / f"{output.comfy_node}_{output.filename}"
        response = self._http("GET", "/api/view", params={"filename": output.filename, "subfolder": output.subfolder,
                                                          "type": output.type}, stream=True)
        if response.status_code != 200:
            raise ComfyHTTPError(f"ComfyUI instance {self.instance}: could not download {output.filename} "
                                 f"(HTTP {response.status_code})")
        partial = target.with_name(target.name + ".part")
        with partial.open("wb") as handle:
            for chunk in response.iter_content(1 << 16):
                handle.write(chunk)
        partial.replace(target)
        return target

    # -----------------------------------------------------------------------------------------
    # running a prompt

    def submit(self, prompt: Mapping[str, Any], *, prompt_id: str, client_id: str, node_map: Mapping[str, str],
               extra_data: Mapping[str, Any] | None = None, number: float | None = None) -> None:
        """POST /prompt. ``number`` places it in ComfyUI's queue (lower first; None: at the end)."""
        body: dict[str, Any] = {"prompt": prompt, "prompt_id": prompt_id, "client_id": client_id,
                                "extra_data": dict(extra_data or {})}
        if number is not None:
            body["number"] = number
        response = self._http("POST", "/api/prompt", json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code == 400 or (response.status_code == 200 and answer.get("node_errors")):
            errors = map_prompt_errors(answer, node_map, self.instance)
            if response.status_code == 200:  # some outputs were dropped: do not let the rest run
                self._json("POST", "/api/queue", json={"delete": [prompt_id]})
                self.interrupt(prompt_id)
            raise PromptRejected(f"ComfyUI instance {self.instance} refused the workflow: {summary(errors)}", errors)
        if response.status_code != 200:
            raise ComfyHTTPError(f"ComfyUI instance {self.instance}: POST /prompt answered HTTP "
                                 f"{response.status_code}: {response.text[:200]}")

    def run(self, workflow: CompiledWorkflow | Mapping[str, Any], *, node_map: Mapping[str, str] | None = None,
            on_progress: ProgressCallback | None = None, timeout: float = 3600.0, download_to: Path | None = None,
            extra_data: Mapping[str, Any] | None = None, prompt_id: str | None = None,
            cancel: threading.Event | None = None, number: float | None = None) -> RunResult:
        """Submit, follow to the end, gather outputs (and download them to ``download_to``).

        ``timeout`` counts from submission and again from the moment the prompt starts, so time
        spent waiting behind another prompt in ComfyUI's queue does not use it up. Setting
        ``cancel`` interrupts the prompt (or takes it off the queue) and raises ``Interrupted``.
        """
        if isinstance(workflow, CompiledWorkflow):
            prompt, node_map = workflow.prompt, workflow.node_map if node_map is None else node_map
        else:
            prompt = dict(workflow)
        node_map = dict(node_map or {})
        prompt_id, client_id = prompt_id or str(uuid.uuid4()), uuid.uuid4().hex
        follow = _Follow(prompt_id, prompt, node_map, on_progress, time.monotonic() + timeout, timeout, cancel)
        ws = self._connect(client_id)
        try:
            self.submit(prompt, prompt_id=prompt_id, client_id=client_id, node_map=node_map, extra_data=extra_data,
                        number=number)
            entry = self._follow(ws, follow)
        finally:
            ws.close()
        outputs = collect_outputs(entry, node_map)
        result = RunResult(prompt_id, outputs, entry)
        if download_to is not None:
            result.files = [self.download(output, download_to) for output in outputs]
        return result

    def _connect(self, client_id: str) -> websocket.WebSocket:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        url = f"{scheme}://{parts.netloc}{parts.path}/ws?clientId={client_id}"
        try:
            ws = websocket.create_connection(url, timeout=self.timeout)
            ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": False}}))
        except (OSError, websocket.WebSocketException) as exc:
            raise InstanceLost(f"ComfyUI instance {self.instance} at {self.base_url}: could not open the "
                               f"event socket ({type(exc).__name__})") from None
        return ws

    def _follow(self, ws: websocket.WebSocket, f: _Follow) -> dict[str, Any]:
        prompt_id, prompt, node_map = f.prompt_id, f.prompt, f.node_map

        def tell(kind: str, node: str | None, **extra: Any) -> None:
            if f.on_progress is not None:
                cls = prompt.get(node, {}).get("class_type") if node else None
                f.on_progress(ProgressEvent(prompt_id, kind, node, node_map.get(node) if node else None, cls, **extra))

        while True:
            if f.cancel is not None and f.cancel.is_set():
                return self._cancel(f)
            remaining = f.deadline - time.monotonic()
            if remaining <= 0:
                raise self._timed_out(prompt_id, prompt, f.current, node_map)
            wait = max(self.poll_interval, 1.0) if f.cancel is None else 0.2
            ws.settimeout(min(remaining, wait))
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError):
                return self._poll(f)
            if not isinstance(frame, str) or not frame:
                if frame in ("", b""):  # the peer closed without a close frame
                    return self._poll(f)
                continue  # binary preview frames
            try:
                message = json.loads(frame)
            except ValueError:
                continue
            data = message.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                continue
            kind = message.get("type")
            if kind == "execution_start":  # the time limit counts again from here
                f.deadline = max(f.deadline, time.monotonic() + f.timeout)
            elif kind == "executing":
                f.current = data.get("node")
                if f.current is None:
                    return self._final_history(f)
                tell("executing", str(f.current))
            elif kind == "progress":
                tell("progress", str(data.get("node")) if data.get("node") is not None else f.current,
                     value=int(data.get("value", 0)), max=int(data.get("max", 0)))
            elif kind == "execution_cached":
                if data.get("nodes"):
                    tell("cached", None, nodes=tuple(str(n) for n in data["nodes"]))
            elif kind == "executed":
                tell("executed", str(data.get("node")))
            elif kind == "execution_error":
                raise self._failed(data, node_map)
            elif kind == "execution_interrupted":
                raise self._interrupted(data, node_map)

    def _final_history(self, f: _Follow) -> dict[str, Any]:
        entry = self.history(f.prompt_id)
        if entry is None:  # written before the "done" event; fall back to waiting for it anyway
            return self._poll(f)
        return self._settle(entry, f.node_map)

    def _settle(self, entry: dict[str, Any], node_map: Mapping[str, str]) -> dict[str, Any]:
        status = entry.get("status") or {}
        if status.get("status_str") == "success" or status.get("completed"):
            return entry
        for name, data in status.get("messages", []):
            if name == "execution_error":
                raise self._failed(data, node_map)
            if name == "execution_interrupted":
                raise self._interrupted(data, node_map)
        raise ExecutionFailed(f"ComfyUI instance {self.instance}: the prompt ended with status "
                              f"{status.get('status_str')!r} and no error message")

    def _poll(self, f: _Follow) -> dict[str, Any]:
        """The socket is gone: follow the prompt through /history and /queue instead."""
        failures = 0
        while True:
            if f.cancel is not None and f.cancel.is_set():
                return self._cancel(f)
            try:
                entry = self.history(f.prompt_id)
                if entry is not None:
                    return self._settle(entry, f.node_map)
                queue = self.queue()
                failures = 0
                queued = {item[1] for key in ("queue_running", "queue_pending") for item in queue.get(key, [])}
                if f.prompt_id not in queued:
                    raise self._lost(f.prompt_id, f.prompt, f.current, f.node_map,
                                     "it is neither queued nor in the history (the server was restarted?)")
            except (InstanceLost, ComfyHTTPError) as exc:
                failures += 1
                if failures >= self.lost_after:
                    raise self._lost(f.prompt_id, f.prompt, f.current, f.node_map, str(exc)) from None
            if time.monotonic() >= f.deadline:
                raise self._timed_out(f.prompt_id, f.prompt, f.current, f.node_map)
            time.sleep(self.poll_interval)

    def _cancel(self, f: _Follow) -> dict[str, Any]:
        """Cancel our prompt and wait until ComfyUI lets go of it; raises ``Interrupted``."""
        cancelled = Interrupted(f"prompt {f.prompt_id} on ComfyUI instance {self.instance} was cancelled"
                                f"{self._where(f.prompt, f.current, f.node_map)}")
        deadline = time.monotonic() + max(5.0, 10 * self.poll_interval)
        try:
            while time.monotonic() < deadline:
                self.cancel(f.prompt_id)
                entry = self.history(f.prompt_id)
                if entry is not None:
                    self._settle(entry, f.node_map)  # raises Interrupted, unless it had just finished
                    return entry
                queue = self.queue()
                if not any(item[1] == f.prompt_id for key in ("queue_running", "queue_pending")
                           for item in queue.get(key, [])):
                    raise cancelled  # taken off the queue before it started
                time.sleep(min(self.poll_interval, 0.1))
        except (InstanceLost, ComfyHTTPError, ComfyTimeout):
            raise cancelled from None
        raise cancelled

    # -----------------------------------------------------------------------------------------
    # errors

    def _where(self, prompt: Mapping[str, Any], node: str | None, node_map: Mapping[str, str]) -> str:
        if node is None:
            return ""
        cls = prompt.get(node, {}).get("class_type", "?")
        recipe = node_map.get(node)
        return f" while running ComfyUI node {node} ({cls})" + (f" of recipe node '{recipe}'" if recipe else "")

    def _lost(self, prompt_id: str, prompt: Mapping[str, Any], node: str | None, node_map: Mapping[str, str],
              why: str) -> InstanceLost:
        recipe = {node_map[n] for n in prompt if n in node_map}
        error = MappedError(", ".join(sorted(recipe)) or None, node, prompt.get(node or "", {}).get("class_type"),
                            f"ComfyUI instance {self.instance} was lost")
        return InstanceLost(f"ComfyUI instance {self.instance} was lost with prompt {prompt_id}"
                            f"{self._where(prompt, node, node_map)}: {why}", [error])

    def _timed_out(self, prompt_id: str, prompt: Mapping[str, Any], node: str | None,
                   node_map: Mapping[str, str]) -> ComfyTimeout:
        return ComfyTimeout(f"prompt {prompt_id} on ComfyUI instance {self.instance} did not finish in time"
                            f"{self._where(prompt, node, node_map)}")

    def _failed(self, data: Mapping[str, Any], node_map: Mapping[str, str]) -> ExecutionFailed:
        error = map_execution_error(data, node_map)
        return ExecutionFailed(f"{error} (instance {self.instance})", [error])

    def _interrupted(self, data: Mapping[str, Any], node_map: Mapping[str, str]) -> Interrupted:
        node = str(data["node_id"]) if data.get("node_id") is not None else None
        error = MappedError(node_map.get(node) if node else None, node, data.get("node_type"), "interrupted")
        return Interrupted(f"{error} (instance {self.instance})", [error])


@dataclass
class _Follow:
    """What following one prompt needs; ``deadline`` moves when the prompt starts."""

    prompt_id: str
    prompt: Mapping[str, Any]
    node_map: Mapping[str, str]
    on_progress: ProgressCallback | None
    deadline: float
    timeout: float
    cancel: threading.Event | None
    current: str | None = None


def collect_outputs(entry: Mapping[str, Any], node_map: Mapping[str, str]) -> list[OutputFile]:
    """Every file a history entry lists, under any ui key (images, gifs, videos, audio, ...)."""
    found: list[OutputFile] = []
    for node_id, ui in (entry.get("outputs") or {}).items():
        for key, items in (ui or {}).items():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, Mapping) and isinstance(item.get("filename"), str):
                    extra = {k: v for k, v in item.items() if k not in ("filename", "subfolder", "type")}
                    found.append(OutputFile(str(node_id), node_map.get(str(node_id)), key, item["filename"],
                                            str(item.get("subfolder", "")), str(item.get("type", "output")), extra))
    return found
