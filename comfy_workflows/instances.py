"""Managed ComfyUI processes: start one per GPU, wait for readiness, warm up, restart on a crash.

A managed instance is ``python main.py --listen 127.0.0.1 --port P --disable-auto-launch
--input-directory D/input --output-directory D/output --temp-directory D`` run from a ComfyUI
checkout (reference/comfyui.md §6.2, §6.4), with ``CUDA_VISIBLE_DEVICES`` set to its GPU, its
output going to ``D/comfyui.log``. Ready means ``GET /api/system_stats`` answers 200 (the socket
only opens after every custom node has been imported). ComfyUI keeps its queue in memory only,
so a restart loses what was queued: the pool resubmits (see ``pool.py``).

:class:`Supervisor` watches the processes and starts a dead one again (with backoff), then warms
it up with a tiny real prompt (``EmptyImage`` -> ``PreviewImage``, a fresh colour each time so
ComfyUI's cache cannot skip it), which exercises the queue, the worker and the socket before
real work arrives. ``pool_instances()`` gives the pool handles whose ``recover``/``restart`` go
through the same locks, so the supervisor and the pool never start a process twice.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from .client import ComfyClient
from .errors import ComfyError
from .pool import ComfyInstance

Notify = Callable[[str], None]


class InstanceStartError(ComfyError):
    """A ComfyUI process exited or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def system_stats(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """``/api/system_stats`` when the server answers 200, else None: the health and readiness check."""
    try:
        response = requests.get(url.rstrip("/") + "/api/system_stats", timeout=timeout)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def comfy_python(path: Path) -> str:
    """The interpreter for a ComfyUI checkout: its own venv when it has one, else ours."""
    for candidate in (path / ".venv" / "bin" / "python", path / "venv" / "bin" / "python"):
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def warm_up(client: ComfyClient, timeout: float = 120.0) -> float:
    """Run a tiny real prompt; returns its seconds (0 when the instance lacks the two core nodes)."""
    info = client.object_info()
    if "EmptyImage" not in info or "PreviewImage" not in info:
        return 0.0
    prompt = {
        "1": {"class_type": "EmptyImage", "_meta": {"title": "reelgraph warm-up"},
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": random.randrange(1 << 24)}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}, "_meta": {"title": "reelgraph warm-up"}},
    }
    began = time.monotonic()
    client.run(prompt, timeout=timeout)
    return time.monotonic() - began


class ManagedInstance:
    """One ComfyUI process this program started and owns."""

    def __init__(self, comfy_path: Path, name: str, state_dir: Path, *, port: int | None = None,
                 gpu: str | None = None, python: str | None = None, extra_args: Sequence[str] = (),
                 ready_timeout: float = 600.0, env: Mapping[str, str] | None = None,
                 after_start: Callable[[ManagedInstance], Any] | None = None) -> None:
        self.path = Path(comfy_path).resolve()
        self.name = name
        self.dir = Path(state_dir).resolve() / name
        self.port = port or free_port()
        self.gpu = gpu
        self.python = python or comfy_python(self.path)
        self.extra_args = list(extra_args)
        self.ready_timeout = ready_timeout
        self.env = dict(env or {})
        self.after_start = after_start
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._lock = threading.RLock()
        self._stopping = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.dir / "comfyui.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)

    def command(self) -> list[str]:
        return [self.python, str(self.path / "main.py"), "--listen", "127.0.0.1", "--port", str(self.port),
                "--disable-auto-launch", "--input-directory", str(self.dir / "input"),
                "--output-directory", str(self.dir / "output"), "--temp-directory", str(self.dir),
                *self.extra_args]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process and wait until it answers; raises ``InstanceStartError``."""
        with self._lock:
            if not (self.path / "main.py").is_file():
                raise InstanceStartError(f"ComfyUI {self.name}: {self.path} has no main.py (is it a ComfyUI checkout?)")
            for sub in ("input", "output"):
                (self.dir / sub).mkdir(parents=True, exist_ok=True)
            env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
            if self.gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = self.gpu
            with self.log.open("ab") as log:
                log.write(f"\n==== reelgraph: starting {' '.join(self.command())}\n".encode())
                log.flush()
                self.process = subprocess.Popen(self.command(), cwd=self.path, env=env, stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT)
            self.starts += 1
            self._wait_ready()
        if self.after_start is not None:
            self.after_start(self)

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise InstanceStartError(f"ComfyUI {self.name} exited with code {code} before it was ready; "
                                         f"last log lines: {self.log_tail()}")
            if system_stats(self.url, timeout=2.0) is not None:
                return
            time.sleep(0.2)
        self._kill()
        raise InstanceStartError(f"ComfyUI {self.name} was not ready after {self.ready_timeout:g} s; "
                                 f"last log lines: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def ensure_up(self) -> bool:
        """Start it again if its process died; True when it did."""
        with self._lock:
            if self._stopping or self.alive():
                return False
            self.start()
            return True

    def restart(self) -> None:
        """Kill and start (a prompt that will not stop)."""
        with self._lock:
            if self._stopping:
                return
            self._kill()
            self.start()

    def stop(self, grace: float = 10.0) -> None:
        with self._lock:
            self._stopping = True
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(grace)
                except subprocess.TimeoutExpired:
                    self._kill()

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


class Supervisor:
    """Starts managed instances, warms them up, and keeps them running."""

    def __init__(self, instances: Sequence[ManagedInstance], *, interval: float = 1.0, warmup: bool = True,
                 notify: Notify | None = None, max_backoff: float = 30.0) -> None:
        self.instances = list(instances)
        self.interval = interval
        self.warmup = warmup
        self.notify = notify or (lambda _message: None)
        self.max_backoff = max_backoff
        self.warm_seconds: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for instance in self.instances:
            instance.after_start = self._warm

    def _warm(self, instance: ManagedInstance) -> None:
        if not self.warmup:
            return
        try:
            self.warm_seconds[instance.name] = warm_up(ComfyClient(instance.url, instance=instance.name))
        except ComfyError as exc:  # a broken instance shows in its first real job too; say it now
            self.notify(f"{instance.name}: warm-up failed: {exc}")

    def start(self) -> None:
        """Start every instance (in parallel), then watch them. Raises if any fails to start."""
        errors: list[str] = []

        def launch(instance: ManagedInstance) -> None:
            try:
                instance.start()
            except InstanceStartError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=launch, args=(i,), daemon=True) for i in self.instances]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.stop()
            raise InstanceStartError("; ".join(errors))
        self._thread = threading.Thread(target=self._watch, name="comfy-supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        backoff = {i.name: 0.0 for i in self.instances}
        next_try = {i.name: 0.0 for i in self.instances}
        while not self._stop.wait(self.interval):
            for instance in self.instances:
                if instance.alive() or time.monotonic() < next_try[instance.name]:
                    continue
                code = instance.process.poll() if instance.process is not None else None
                try:
                    began = time.monotonic()
                    if instance.ensure_up():
                        self.notify(f"{instance.name}: exited (code {code}); restarted in "
                                    f"{time.monotonic() - began:.1f} s at {instance.url}")
                    backoff[instance.name] = 0.0
                except InstanceStartError as exc:
                    backoff[instance.name] = min(self.max_backoff, max(1.0, 2 * backoff[instance.name]))
                    next_try[instance.name] = time.monotonic() + backoff[instance.name]
                    self.notify(f"{instance.name}: restart failed ({exc}); next try in {backoff[instance.name]:g} s")

    def pool_instances(self, **options: Any) -> list[ComfyInstance]:
        return [ComfyInstance(i.url, i.name, recover=i.ensure_up, restart=i.restart, **options) for i in self.instances]

    def stop(self) -> None:
        self._stop.set()
        for instance in self.instances:
            instance.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
