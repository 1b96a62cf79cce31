"""Completion webhooks: signed, persisted, retried with exponential backoff.

Each delivery POSTs ``{"event": "run.finished", "run": {...}}`` (the run's summary with the
caller's metadata) and these headers:

* ``Reelgraph-Event: run.finished`` and ``Reelgraph-Delivery: <run id>`` (stable across retries:
  receivers deduplicate on it);
* ``Reelgraph-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.

Retries: connection errors, 408, 425, 429 and 5xx, after ``backoff`` seconds doubling each time
(or the ``Retry-After`` the receiver asks for), up to ``attempts`` attempts; other answers are
final. Targets are checked when submitted and again before every attempt: http(s) only, and
every address the host resolves to must be public unless private targets are allowed.
Redirects are not followed (a redirect could point anywhere).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .store import ServerStore

log = logging.getLogger("reelgraph.server")
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF = 300.0
TIMEOUT = 10.0


class UnsafeUrl(ValueError):
    """A webhook target the server will not call."""


def check_url(url: str, allow_private: bool) -> None:
    """Raise UnsafeUrl unless ``url`` is http(s) to a host whose every address is public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise UnsafeUrl("must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("has an invalid port") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"host {parts.hostname!r} does not resolve ({exc})") from None
    if allow_private:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise UnsafeUrl(
                f"host {parts.hostname!r} resolves to the non-public address {address}"
                " (set REELGRAPH_WEBHOOK_ALLOW_PRIVATE=1 to allow private and loopback targets)"
            )


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
        self._session = requests.Session()

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
            check_url(row.url, self._allow_private)
        except UnsafeUrl as exc:
            self._store.update_webhook(run_id, "failed", attempt, row.next_at, f"refused: {exc}")
            self._on_attempt("refused", attempt)
            return
        body = row.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "reelgraph-webhook/1",
            "Reelgraph-Event": "run.finished",
            "Reelgraph-Delivery": run_id,
            "Reelgraph-Signature": sign(self._secret, int(time.time()), body),
        }
        try:
            response = self._session.post(row.url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            error, retry = f"could not reach the target: {type(exc).__name__}", True
        else:
            response.close()
            if 200 <= response.status_code < 300:
                self._store.update_webhook(run_id, "delivered", attempt, time.time(), None)
                self._on_attempt("delivered", attempt)
                return
            error, retry = f"HTTP {response.status_code}", response.status_code in RETRY_STATUSES
            retry_after = _retry_after(response.headers.get("Retry-After"))
        if retry and attempt < self._attempts:
            delay = retry_after if retry_after is not None else self._backoff * 2 ** (attempt - 1)
            due = time.time() + min(delay, MAX_BACKOFF)
            self._store.update_webhook(run_id, "pending", attempt, due, error)
            self._on_attempt("retry", attempt)
            self._push(due, run_id)
        else:
            self._store.update_webhook(run_id, "failed", attempt, time.time(), error)
            self._on_attempt("failed", attempt)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
