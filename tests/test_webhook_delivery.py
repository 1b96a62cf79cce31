"""Webhook delivery against a real receiver on loopback: targets are vetted like image downloads,
and the POST goes to the address that was vetted — a DNS answer that changes between the check and
the connection (rebinding) cannot move it. Host names resolve through a stand-in resolver, so a
name can be made to point at loopback without touching the machine's DNS.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reelgraph.server.store import ServerStore
from reelgraph.server.webhooks import UnsafeUrl, WebhookDispatcher, check_url
from reelgraph.tests.loopback_http import Loopback, Seen

SECRET = "webhook-test-secret"
HOST = "hooks.rebind.test"
_real_getaddrinfo = socket.getaddrinfo


class Resolver:
    """Answers for HOST from ``answers`` (the last one repeats); other names resolve normally."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups = 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != HOST:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        address = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]


@pytest.fixture
def resolve(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Resolver]:
    def install(*answers: str) -> Resolver:
        resolver = Resolver(*answers)
        monkeypatch.setattr(socket, "getaddrinfo", resolver)
        return resolver

    return install


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ServerStore]:
    instance = ServerStore(tmp_path / "server.sqlite")
    yield instance
    instance.close()


def deliver(store: ServerStore, url: str, *, allow_private: bool, attempts: int = 5) -> list[tuple[str, int]]:
    """Schedule one delivery and run the dispatcher until it is delivered or has failed."""
    outcomes: list[tuple[str, int]] = []
    dispatcher = WebhookDispatcher(store, SECRET, allow_private=allow_private, attempts=attempts, backoff=0.01,
                                   on_attempt=lambda outcome, attempt: outcomes.append((outcome, attempt)))
    dispatcher.start()
    try:
        dispatcher.schedule("run-1", url, json.dumps({"event": "run.finished", "run": {"id": "run-1"}}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = store.webhook("run-1")
            if row is not None and row.state != "pending":
                break
            time.sleep(0.02)
    finally:
        dispatcher.stop()
    return outcomes


def test_a_name_resolving_to_loopback_is_refused_unless_allowed(resolve, store, loopback: Loopback) -> None:
    resolve("127.0.0.1")
    loopback.on("/hook", (204, {}, b""))
    url = f"http://{HOST}:{loopback.port}/hook"
    with pytest.raises(UnsafeUrl, match=r"non-public address \(127\.0\.0\.1\).*REELGRAPH_WEBHOOK_ALLOW_PRIVATE"):
        check_url(url, allow_private=False)  # at submission
    assert deliver(store, url, allow_private=False) == [("refused", 1)]  # and again before each attempt
    row = store.webhook("run-1")
    assert row is not None and row.state == "failed" and "non-public address" in (row.last_error or "")
    assert loopback.seen == []  # nothing reached the receiver
    # link-local (cloud metadata) stays refused even when private targets are allowed
    with pytest.raises(UnsafeUrl, match="non-public address"):
        check_url("http://169.254.169.254/latest/meta-data", allow_private=True)


def test_the_post_goes_to_the_address_that_was_checked(resolve, store, loopback: Loopback) -> None:
    # the name rebinds after its first answer: to a loopback address nothing listens on
    resolver = resolve("127.0.0.1", "127.0.0.2")
    loopback.on("/hook", (204, {}, b""))
    assert deliver(store, f"http://{HOST}:{loopback.port}/hook", allow_private=True) == [("delivered", 1)]
    (seen,) = loopback.to("/hook")
    assert seen.headers["host"] == f"{HOST}:{loopback.port}"  # named by host, connected by the vetted address
    assert resolver.lookups == 1  # resolved once, when checked; the connection never asked again


def test_delivery_to_an_allowed_loopback_receiver_is_signed_and_retried(resolve, store, loopback: Loopback) -> None:
    resolver = resolve("127.0.0.1")
    loopback.on("/hook", (503, {}, b""), (429, {"Retry-After": "0"}, b""), (204, {}, b""))
    outcomes = deliver(store, f"http://{HOST}:{loopback.port}/hook", allow_private=True)
    assert outcomes == [("retry", 1), ("retry", 2), ("delivered", 3)]
    requests = loopback.to("/hook")
    assert len(requests) == 3 and resolver.lookups == 3  # the target is vetted again before every attempt
    bodies = {seen.body for seen in requests}
    assert len(bodies) == 1
    for seen in requests:
        check_signature(seen)
        assert seen.headers["reelgraph-delivery"] == "run-1" and seen.headers["reelgraph-event"] == "run.finished"
    row = store.webhook("run-1")
    assert row is not None and (row.state, row.attempts, row.last_error) == ("delivered", 3, None)


def test_a_name_that_stops_resolving_is_retried_not_refused(store, loopback: Loopback) -> None:
    outcomes = deliver(store, "http://no-such-host.invalid/hook", allow_private=True, attempts=2)
    assert outcomes == [("retry", 1), ("failed", 2)]
    row = store.webhook("run-1")
    assert row is not None and "could not resolve the target" in (row.last_error or "")


def check_signature(seen: Seen) -> None:
    stamp, signature = (part.split("=", 1)[1] for part in seen.headers["reelgraph-signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + seen.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    assert abs(int(stamp) - time.time()) < 60
