"""The server's own SQLite file (``<home>/server.sqlite``): what it needs to answer and to resume.

Submissions (recipe document, params, options, webhook, metadata), run status, the event log
(per-run sequence numbers, the ids of resumable streams), idempotency keys and webhook
deliveries. Per-node executions live in the engine's ``runs.sqlite``; the engine run of the
first attempt has the server's run id.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    submitted REAL NOT NULL,
    started REAL,
    finished REAL,
    recipe TEXT NOT NULL,
    recipe_name TEXT NOT NULL,
    template TEXT,
    params TEXT NOT NULL,
    options TEXT NOT NULL,
    webhook_url TEXT,
    metadata TEXT NOT NULL,
    submission TEXT NOT NULL,
    parent TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    outputs TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs(submitted);
CREATE INDEX IF NOT EXISTS runs_active ON runs(submission) WHERE status IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS webhooks (
    run_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT
);
"""


@dataclass(frozen=True)
class RunRow:
    id: str
    status: str
    submitted: float
    started: float | None
    finished: float | None
    recipe: dict[str, Any]
    recipe_name: str
    template: str | None
    params: dict[str, Any]
    options: dict[str, Any]  # outputs, force
    webhook_url: str | None
    metadata: dict[str, Any]
    submission: str
    parent: str | None
    attempts: int
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class WebhookRow:
    run_id: str
    url: str
    payload: str
    state: str  # pending | delivered | failed
    attempts: int
    next_at: float
    last_error: str | None


_RUN_COLUMNS = (
    "id, status, submitted, started, finished, recipe, recipe_name, template, params, options,"
    " webhook_url, metadata, submission, parent, attempts, outputs, error"
)
_JSON_FIELDS = {"recipe", "params", "options", "metadata", "outputs", "error"}


def _run(row: Sequence[Any]) -> RunRow:
    names = [n.strip() for n in _RUN_COLUMNS.split(",")]
    values = {n: (json.loads(v) if n in _JSON_FIELDS and v is not None else v) for n, v in zip(names, row)}
    return RunRow(**values)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class ServerStore:
    """Thread-safe: one connection behind a lock; every write is one short transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        self._seq: dict[str, int] = {}
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def ping(self) -> None:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()

    # ---- runs ---------------------------------------------------------------------------------
    def insert_run(
        self,
        run_id: str,
        *,
        recipe: dict[str, Any],
        recipe_name: str,
        template: str | None,
        params: dict[str, Any],
        options: dict[str, Any],
        webhook_url: str | None,
        metadata: dict[str, Any],
        submission: str,
        parent: str | None,
        idempotency: tuple[str, str, str] | None,
        dedupe: bool,
    ) -> tuple[str, str]:
        """Create a queued run, unless an idempotency key or an identical active submission
        already names one. Returns (run id, how: created | replayed | deduplicated)."""
        with self._write() as db:
            if idempotency is not None:
                scope, key, request = idempotency
                found = db.execute(
                    "SELECT request, run_id FROM idempotency WHERE scope = ? AND key = ?", (scope, key)
                ).fetchone()
                if found is not None:
                    if found[0] != request:
                        raise IdempotencyConflict(found[1])
                    return found[1], "replayed"
            existing = (
                db.execute(
                    "SELECT id FROM runs WHERE submission = ? AND status IN ('queued', 'running') LIMIT 1", (submission,)
                ).fetchone()
                if dedupe
                else None
            )
            if existing is not None:
                run_id, how = existing[0], "deduplicated"
            else:
                how = "created"
                db.execute(
                    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, 'queued', ?, NULL, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL)",
                    (run_id, time.time(), _dumps(recipe), recipe_name, template, _dumps(params), _dumps(options),
                     webhook_url, _dumps(metadata), submission, parent),
                )
            if idempotency is not None:
                db.execute("INSERT INTO idempotency VALUES (?, ?, ?, ?, ?)", (*idempotency, run_id, time.time()))
        return run_id, how

    def get_run(self, run_id: str) -> RunRow | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def list_runs(self, limit: int, status: str | None = None, before: float | None = None) -> list[RunRow]:
        clauses, args = [], []
        if status:
            clauses.append("status = ?")
            args.append(status)
        if before is not None:
            clauses.append("submitted < ?")
            args.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY submitted DESC LIMIT ?", (*args, limit)
            ).fetchall()
        return [_run(row) for row in rows]

    def active_runs(self) -> list[RunRow]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE status IN ('queued', 'running') ORDER BY submitted"
            ).fetchall()
        return [_run(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())

    def start_attempt(self, run_id: str) -> int | None:
        """queued/running -> running with one more attempt; None when the run is no longer active."""
        with self._write() as db:
            row = db.execute("SELECT attempts FROM runs WHERE id = ? AND status IN ('queued', 'running')", (run_id,)).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, started = COALESCE(started, ?) WHERE id = ?",
                (time.time(), run_id),
            )
        return int(row[0]) + 1

    def requeue(self, run_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET status = 'queued' WHERE id = ? AND status = 'running'", (run_id,))

    def finish_run(self, run_id: str, status: str, outputs: dict[str, Any] | None, error: dict[str, Any] | None) -> bool:
        """Set a terminal status once; False when the run was already finished."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE runs SET status = ?, finished = ?, outputs = ?, error = ? WHERE id = ? AND status IN ('queued', 'running')",
                (status, time.time(), None if outputs is None else _dumps(outputs), None if error is None else _dumps(error), run_id),
            )
        return cursor.rowcount == 1

    def cancel_queued(self, run_id: str) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE runs SET status = 'cancelled', finished = ? WHERE id = ? AND status = 'queued'", (time.time(), run_id)
            )
        return cursor.rowcount == 1

    # ---- events -------------------------------------------------------------------------------
    def append_event(self, run_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """Give the event the run's next sequence number and store it; returns the stored event."""
        with self._lock:
            seq = self._seq.get(run_id)
            if seq is None:
                seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?", (run_id,)).fetchone()[0]
            seq += 1
            stored = {"id": seq, "run_id": run_id, **event}
            self._db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?)", (run_id, seq, str(event["event"]), _dumps(stored))
            )
            self._seq[run_id] = seq
        return stored

    def forget_sequence(self, run_id: str) -> None:
        """Drop the cached counter of a finished run (its events are all on disk)."""
        with self._lock:
            self._seq.pop(run_id, None)

    def events(self, run_id: str, after: int = 0, kinds: Sequence[str] | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        query = "SELECT data FROM events WHERE run_id = ? AND seq > ?"
        args: list[Any] = [run_id, after]
        if kinds:
            query += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            args.extend(kinds)
        query += " ORDER BY seq LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [json.loads(row[0]) for row in rows]

    # ---- webhooks -----------------------------------------------------------------------------
    def add_webhook(self, run_id: str, url: str, payload: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO webhooks VALUES (?, ?, ?, 'pending', 0, ?, NULL)", (run_id, url, payload, time.time())
            )

    def update_webhook(self, run_id: str, state: str, attempts: int, next_at: float, last_error: str | None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE webhooks SET state = ?, attempts = ?, next_at = ?, last_error = ? WHERE run_id = ?",
                (state, attempts, next_at, last_error, run_id),
            )

    def webhook(self, run_id: str) -> WebhookRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM webhooks WHERE run_id = ?", (run_id,)).fetchone()
        return WebhookRow(*row) if row else None

    def pending_webhooks(self) -> list[WebhookRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM webhooks WHERE state = 'pending' ORDER BY next_at").fetchall()
        return [WebhookRow(*row) for row in rows]


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id
