"""Run records in SQLite: one row per run, one per node execution (per list element)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ExecStatus = Literal["executed", "cached", "failed", "skipped"]
RunStatus = Literal["running", "succeeded", "failed", "cancelled", "interrupted"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    recipe_name TEXT NOT NULL,
    recipe_digest TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER,
    started REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS executions (
    run_id TEXT NOT NULL REFERENCES runs(id),
    node TEXT NOT NULL,
    element INTEGER NOT NULL,  -- -1 when the node did not fan out
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    cache_key TEXT,
    key_doc TEXT,
    seconds REAL NOT NULL,
    error TEXT,
    cost REAL,   -- USD this run paid (0 when reused from the cache); NULL: unknown
    saved REAL,  -- a reused result: what it cost when it was made
    PRIMARY KEY (run_id, node, element)
);
CREATE INDEX IF NOT EXISTS runs_by_recipe ON runs(recipe_name, started);
"""


@dataclass
class Execution:
    """One execution of a node (one list element of a fanned-out node)."""

    node: str
    type: str
    element: int | None
    status: ExecStatus
    cache_key: str | None = None
    seconds: float = 0.0
    error: dict[str, str] | None = None  # {node, step, cause}
    key_doc: dict[str, Any] | None = field(default=None, repr=False)
    cost: float | None = None  # USD paid in this run (reported, else estimated; 0 when cached); None: unknown
    saved: float | None = None  # cached: what the reused result cost when it was made

    def report(self) -> dict[str, Any]:
        entry = asdict(self)
        del entry["key_doc"]
        return entry


@dataclass(frozen=True)
class RunRow:
    id: str
    recipe_name: str
    status: str
    started: float
    finished: float | None


class RunRecords:
    """Thread-safe; only the engine's coordinator writes, so one connection suffices."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # several processes may share one home: wait for each other's writes instead of failing
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
            self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Homes made before the cost columns existed get them (NULL: cost unknown)."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(executions)")}
        for column in ("cost", "saved"):
            if column not in present:
                try:
                    self._db.execute(f"ALTER TABLE executions ADD COLUMN {column} REAL")
                except sqlite3.OperationalError:  # another process added it first
                    pass

    def close(self) -> None:
        self._db.close()

    def start_run(self, run_id: str, recipe_name: str, recipe_digest: str, params: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._mark_dead_runs_interrupted()
            self._db.execute(
                "INSERT INTO runs (id, recipe_name, recipe_digest, params, status, pid, started)"
                " VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (run_id, recipe_name, recipe_digest, json.dumps(params), os.getpid(), time.time()),
            )
            self._db.execute("COMMIT")

    def _mark_dead_runs_interrupted(self) -> None:
        # a run still 'running' whose process is gone was killed: say so instead of lying
        for run_id, pid in self._db.execute("SELECT id, pid FROM runs WHERE status = 'running'").fetchall():
            if pid is not None and not _process_alive(pid):
                self._db.execute("UPDATE runs SET status = 'interrupted' WHERE id = ?", (run_id,))

    def record(self, run_id: str, executions: Iterable[Execution]) -> None:
        rows = [
            (
                run_id,
                e.node,
                -1 if e.element is None else e.element,
                e.type,
                e.status,
                e.cache_key,
                json.dumps(e.key_doc) if e.key_doc is not None else None,
                e.seconds,
                json.dumps(e.error) if e.error else None,
                e.cost,
                e.saved,
            )
            for e in executions
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # take the write lock up front, waiting if another process holds it
            self._db.executemany(
                "INSERT OR REPLACE INTO executions (run_id, node, element, type, status, cache_key, key_doc, seconds,"
                " error, cost, saved) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")

    def finish_run(self, run_id: str, status: RunStatus) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, time.time(), run_id))

    def runs(self, limit: int = 20) -> list[RunRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, recipe_name, status, started, finished FROM runs ORDER BY started DESC LIMIT ?", (limit,)
            ).fetchall()
        return [RunRow(*row) for row in rows]

    def executions(self, run_id: str) -> list[Execution]:
        with self._lock:
            rows = self._db.execute(
                "SELECT node, type, element, status, cache_key, seconds, error, cost, saved FROM executions"
                " WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        return [
            Execution(node, type_, None if element < 0 else element, status, key, seconds,
                      json.loads(error) if error else None, cost=cost, saved=saved)
            for node, type_, element, status, key, seconds, error, cost, saved in rows
        ]

    def last_key_docs(self, recipe_name: str) -> dict[tuple[str, int | None], dict[str, Any]]:
        """Key documents of the newest recorded execution of each (node, element) of a recipe."""
        with self._lock:
            # SQLite takes the bare columns from the row that holds MAX(): the newest per (node, element)
            rows = self._db.execute(
                "SELECT e.node, e.element, e.key_doc, MAX(r.started) FROM executions e JOIN runs r ON r.id = e.run_id"
                " WHERE r.recipe_name = ? AND e.key_doc IS NOT NULL GROUP BY e.node, e.element",
                (recipe_name,),
            ).fetchall()
        return {(node, None if element < 0 else element): json.loads(doc) for node, element, doc, _ in rows}

    def keys_of_recent_runs(self, keep_runs: int) -> set[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT e.cache_key FROM executions e WHERE e.cache_key IS NOT NULL AND e.run_id IN"
                " (SELECT id FROM runs ORDER BY started DESC LIMIT ?)",
                (keep_runs,),
            ).fetchall()
        return {row[0] for row in rows}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
