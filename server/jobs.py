"""Where runs execute. ``JobQueue`` is the interface a distributed engine (Celery + Redis) will
implement; ``InProcessQueue`` is the embedded default: a pool of worker threads in the server.

A job is a run id; the queue calls ``execute(run_id, control)`` once per delivery. Durability
is not the queue's business: the server store keeps every queued/running run and resubmits
them on startup.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("reelgraph.server")


@dataclass
class JobControl:
    """Per running job: ``cancel`` stops it; ``shutdown`` says the stop is the server's, not the user's."""

    cancel: threading.Event = field(default_factory=threading.Event)
    shutdown: bool = False


Executor = Callable[[str, JobControl], None]


class JobQueue(Protocol):
    def start(self, execute: Executor) -> None: ...
    def submit(self, run_id: str) -> None: ...
    def cancel(self, run_id: str) -> bool:
        """Ask a running job to stop; False when it is not running here."""
        ...
    def depth(self) -> int:
        """Jobs waiting for a worker."""
        ...
    def running(self) -> int: ...
    def stop(self, timeout: float) -> None:
        """Stop taking jobs, interrupt running ones (as a shutdown), wait for them."""
        ...


class InProcessQueue:
    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._active: dict[str, JobControl] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._execute: Executor | None = None

    def start(self, execute: Executor) -> None:
        self._execute = execute
        for index in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"reelgraph-job-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, run_id: str) -> None:
        if not self._stopping:
            self._queue.put(run_id)

    def cancel(self, run_id: str) -> bool:
        with self._lock:
            control = self._active.get(run_id)
        if control is None:
            return False
        control.cancel.set()
        return True

    def depth(self) -> int:
        return self._queue.qsize()

    def running(self) -> int:
        with self._lock:
            return len(self._active)

    def stop(self, timeout: float) -> None:
        with self._lock:
            self._stopping = True
            for control in self._active.values():
                control.shutdown = True
                control.cancel.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        assert self._execute is not None
        while True:
            run_id = self._queue.get()
            if run_id is None or self._stopping:
                return
            control = JobControl()
            with self._lock:
                if self._stopping:
                    return
                self._active[run_id] = control
            try:
                self._execute(run_id, control)
            except Exception:  # a bug in one job must not kill the worker
                log.exception("job %s failed unexpectedly", run_id)
            finally:
                with self._lock:
                    self._active.pop(run_id, None)
