"""A loopback HTTP server for provider and download tests: scripted replies, recorded requests."""

from __future__ import annotations

import io
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from PIL import Image

Reply = tuple[int, dict[str, str], bytes]

@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Loopback:
    """Answers queued replies per path (the last one repeats) and records every request.
    A reply is (status, headers, body) or a function of the Seen request returning one.
    A ``Content-Length: omit`` header sends the body without a length and closes the connection."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.routes: dict[str, list[Reply | Callable[[Seen], Reply]]] = {}
        self.seen: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                owner.seen.append(seen)
                queue = owner.routes.get(parts.path)
                if not queue:
                    reply: Reply = (404, {"Content-Type": "application/json"}, b'{"error": "no such route"}')
                else:
                    entry = queue.pop(0) if len(queue) > 1 else queue[0]
                    reply = entry(seen) if callable(entry) else entry
                status, headers, body = reply
                self.send_response(status)
                omit = headers.get("Content-Length") == "omit"
                for name, value in headers.items():
                    if name != "Content-Length":
                        self.send_header(name, value)
                if omit:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = _answer

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that hang up or refuse our certificate are part of the tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def on(self, path: str, *replies: Reply | Callable[[Seen], Reply]) -> None:
        self.routes[path] = list(replies)

    def url(self, path: str = "", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def to(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    server = Loopback()
    yield server
    server.close()


def json_reply(document: Any, status: int = 200, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(document).encode()


def image_bytes(width: int, height: int, fmt: str = "PNG", color: tuple[int, int, int] = (200, 80, 40), **save: Any) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def image_reply(data: bytes, content_type: str = "image/png") -> Reply:
    return 200, {"Content-Type": content_type}, data
