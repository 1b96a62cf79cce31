"""Run events: stored in the server's log (ids per run, so streams resume from ``Last-Event-ID``)
and fanned out to live SSE/WebSocket subscribers.

Engine events are translated to the API's names: ``node_finished`` with status cached, failed or
skipped becomes ``node_cached``, ``node_failed`` or ``node_skipped``; every node event keeps its
``status``. Writers are engine threads; readers are asyncio tasks woken through their loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from .store import ServerStore

FINISHED = "run_finished"
NODE_EVENTS = ("node_started", "node_finished", "node_cached", "node_failed", "node_skipped")
_FINISHED_NAMES = {"cached": "node_cached", "failed": "node_failed", "skipped": "node_skipped"}
HEARTBEAT_SECONDS = 15.0


def api_event(engine_event: dict[str, Any]) -> dict[str, Any]:
    """An engine event under its API name (run-level engine events are replaced by the server's own)."""
    event = dict(engine_event)
    if event["event"] == "node_finished":
        event["event"] = _FINISHED_NAMES.get(event.get("status", ""), "node_finished")
    return event


class EventHub:
    def __init__(self, store: ServerStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
        self._closing = False
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # e.g. metrics

    def publish(self, run_id: str, event: dict[str, Any]) -> dict[str, Any]:
        stored = self._store.append_event(run_id, {**event, "time": time.time()})
        for listener in self.listeners:
            listener(stored)
        self._wake(run_id)
        if stored["event"] == FINISHED:
            self._store.forget_sequence(run_id)
        return stored

    def _wake(self, run_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(run_id, ()))
        for loop, flag in waiters:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # that loop is closed: its subscriber is gone
                pass

    def close(self) -> None:
        """Server shutdown: wake every subscriber so streams end promptly."""
        self._closing = True
        with self._lock:
            run_ids = list(self._waiters)
        for run_id in run_ids:
            self._wake(run_id)

    async def follow(self, run_id: str, after: int, finished: Callable[[], bool]) -> AsyncIterator[dict[str, Any] | None]:
        """Yield stored events after ``after``, then live ones, until the run finishes.
        Yields None as a heartbeat when nothing happened for a while."""
        loop = asyncio.get_running_loop()
        flag = asyncio.Event()
        entry = (loop, flag)
        with self._lock:
            self._waiters[run_id].add(entry)
        try:
            while not self._closing:
                flag.clear()  # cleared before reading, so an event stored after the read still wakes us
                batch = self._store.events(run_id, after)
                for event in batch:
                    after = event["id"]
                    yield event
                    if event["event"] == FINISHED:
                        return
                if batch:
                    continue
                if finished():  # finished before any run_finished event was written (e.g. cancelled while queued)
                    return
                try:
                    await asyncio.wait_for(flag.wait(), HEARTBEAT_SECONDS)
                except asyncio.TimeoutError:
                    yield None
        finally:
            with self._lock:
                self._waiters[run_id].discard(entry)
                if not self._waiters[run_id]:
                    del self._waiters[run_id]
