"""Bearer tokens and per-token rate limits (token buckets).

With no token configured (allowed on loopback only) every client is anonymous and limited per
address. Tokens are compared in constant time; only a short digest of a token is ever stored
(as the scope of idempotency keys), never the token.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time

from starlette.requests import HTTPConnection

from .errors import ApiError


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class TokenBuckets:
    """``rate`` requests per second sustained, ``burst`` at once, per key."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until a request would be."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class Authority:
    def __init__(self, tokens: frozenset[str], rate: float, burst: int) -> None:
        self._tokens = [t.encode() for t in tokens]
        self.buckets = TokenBuckets(rate, burst)

    @property
    def required(self) -> bool:
        return bool(self._tokens)

    def identify(self, connection: HTTPConnection, allow_query: bool = False) -> str:
        """The caller's scope (a token digest, or ``anon:<address>``); ApiError 401 when not allowed."""
        header = connection.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        token = presented.strip() if scheme.lower() == "bearer" else ""
        if not token and allow_query:  # EventSource and browser WebSockets cannot set headers
            token = connection.query_params.get("access_token", "")
        if not self.required:
            return token_id(token) if token else f"anon:{connection.client.host if connection.client else '-'}"
        if not token:
            raise ApiError(401, "unauthorized", "a bearer token is required (Authorization: Bearer <token>)",
                           headers={"WWW-Authenticate": 'Bearer realm="reelgraph"'})
        if not any(hmac.compare_digest(token.encode(), known) for known in self._tokens):
            raise ApiError(401, "unauthorized", "the bearer token is not valid",
                           headers={"WWW-Authenticate": 'Bearer realm="reelgraph", error="invalid_token"'})
        return token_id(token)

    def admit(self, connection: HTTPConnection, allow_query: bool = False) -> str:
        """Authenticate, then charge one request to the caller's bucket (429 with Retry-After)."""
        scope = self.identify(connection, allow_query)
        wait = self.buckets.take(scope)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited", f"too many requests; retry in {retry} s",
                           headers={"Retry-After": str(retry)})
        return scope
