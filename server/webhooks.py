"""Completion webhooks: signed, persisted, retried with exponential backoff.

Each delivery POSTs ``{"event": "run.finished", "run": {...}}`` (the run's summary with the
caller's metadata) and these headers:

* ``Reelgraph-Event: run.finished`` and ``Reelgraph-Delivery: <run id>`` (stable across retries:
  receivers deduplicate on it);
* ``Reelgraph-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.

Retries: connection errors, 408, 425, 429 and 5xx, after ``backoff`` seconds doubling each time
(or the ``Retry-After`` the receiver asks for), up to ``attempts`` attempts; other answers are
final. Targets are checked when submitted and again before every attempt, as image downloads
are (``nodes/providers/pinned_http``): http(s) only, no credentials, every address the host
resolves to public (private and loopback ones only when allowed; link-local, multicast and
reserved never), and the POST connects to the address that was checked, so a DNS answer that
changes between check and connect (rebinding) cannot redirect it. A host that does not resolve
is retried; other refusals are final. Redirects are not followed (they could point anywhere).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from ..nodes.providers.pinned_http import (
    NonPublicAddress,
    Target,
    Unresolvable,
    UnsafeTarget,
    pinned_request,
    vet,
)
from .store import ServerStore

log = logging.getLogger("reelgraph.server")
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF = 300.0
TIMEOUT = 10.0


class UnsafeUrl(ValueError):
    """A webhook target the server will not call."""


def check_url(url: str, allow_private: bool) -> Target:
    """The vetted target of ``url``; UnsafeUrl says why the server will not call it."""
    try:
        return vet(url, allow_private)
    except UnsafeTarget as exc:
        hint = (" (set REELGRAPH_WEBHOOK_ALLOW_PRIVATE=1 to allow private and loopback targets)"
                if isinstance(exc, NonPublicAddress) and not allow_private else "")
        raise UnsafeUrl(f"{exc}{hint}") from exc


def load_secret(configured: str | None, home: Path) -> str:
    """The configured secret, else one generated once and kept (mode 0600) in ``<home>/webhook-secret``."""
    if configured:
        return configured
    path = home / "webhook-secret"
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(handle, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookDispatcher:
    """One thread delivering due webhooks in order of their next attempt; survives restarts via the store."""

    def __init__(
        self,
        store: ServerStore,
        secret: str,
        *,
        allow_private: bool,
        attempts: int,
        backoff: float,
        on_attempt: Callable[[str, int], None] = lambda outcome, attempt: None,
    ) -> None:
        self._store = store
        self._secret = secret
        self._allow_private = allow_private
        self._attempts = max(1, attempts)
        self._backoff = max(0.0, backoff)
        self._on_attempt = on_attempt
        self._heap: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="reelgraph-webhooks", daemon=True)

    def start(self) -> None:
        for row in self._store.pending_webhooks():
            self._push(row.next_at, row.run_id)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def schedule(self, run_id: str, url: str, payload: str) -> None:
        self._store.add_webhook(run_id, url, payload)
        self._push(time.time(), run_id)

    def _push(self, due: float, run_id: str) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, run_id))
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._heap or self._heap[0][0] > time.time()):
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0][0] - time.time()))
                if self._stopping:
                    return
                _, run_id = heapq.heappop(self._heap)
            try:
                self._attempt(run_id)
            except Exception:  # never let one delivery stop the others
                log.exception("webhook delivery for run %s failed unexpectedly", run_id)

    def _attempt(self, run_id: str) -> None:
        row = self._store.webhook(run_id)
        if row is None or row.state != "pending":
            return
        attempt = row.attempts + 1
        retry_after: float | None = None
        try:
            target = check_url(row.url, self._allow_private)
        except UnsafeUrl as exc:
            if not isinstance(exc.__cause__, Unresolvable):
                self._store.update_webhook(run_id, "failed", attempt, row.next_at, f"refused: {exc}")
                self._on_attempt("refused", attempt)
                return
            error, retry = f"could not resolve the target: {exc}", True  # DNS may recover
        else:
            try:
                status, retry_after = self._post(run_id, target, row.payload.encode())
            except requests.RequestException as exc:
                error, retry = f"could not reach the target: {type(exc).__name__}", True
            else:
                if 200 <= status < 300:
                    self._store.update_webhook(run_id, "delivered", attempt, time.time(), None)
                    self._on_attempt("delivered", attempt)
                    return
                error, retry = f"HTTP {status}", status in RETRY_STATUSES
        if retry and attempt < self._attempts:
            delay = retry_after if retry_after is not None else self._backoff * 2 ** (attempt - 1)
            due = time.time() + min(delay, MAX_BACKOFF)
            self._store.update_webhook(run_id, "pending", attempt, due, error)
            self._on_attempt("retry", attempt)
            self._push(due, run_id)
        else:
            self._store.update_webhook(run_id, "failed", attempt, time.time(), error)
            self._on_attempt("failed", attempt)

    def _post(self, run_id: str, target: Target, body: bytes) -> tuple[int, float | None]:
        """One signed POST to the vetted address: (status, the Retry-After it asks for)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "reelgraph-webhook/1",
            "Reelgraph-Event": "run.finished",
            "Reelgraph-Delivery": run_id,
            "Reelgraph-Signature": sign(self._secret, int(time.time()), body),
        }
        # stream: the answer's body is never read (a receiver cannot make us hold a large one)
        with pinned_request(target, "POST", headers=headers, data=body, timeout=TIMEOUT, stream=True) as response:
            return response.status_code, _retry_after(response.headers.get("Retry-After"))


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
