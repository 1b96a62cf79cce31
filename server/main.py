"""``reelgraph serve``: check the settings, take the engine home, listen, run uvicorn.

The socket is bound here (port 0 picks a free port) and the address printed as
``reelgraph: serving on http://HOST:PORT`` before the app starts, so scripts can find it.
"""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn

from ..engine import default_home
from ..engine.runner import RunConfigError
from .app import create_app
from .config import ConfigError, load_config
from .service import HomeInUse, RunService


class _Server(uvicorn.Server):
    """Ends event streams as soon as shutdown starts (uvicorn waits for open responses)."""

    def __init__(self, config: uvicorn.Config, service: RunService) -> None:
        super().__init__(config)
        self._service = service

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._service.hub.close()
        super().handle_exit(sig, frame)


def serve(home: Path | None, host: str, port: int, workers: int, token_file: Path | None,
          comfy_urls: tuple[str, ...] = ()) -> int:
    try:
        config = load_config(home or default_home(), host, port, workers, token_file, comfy_urls)
        service = RunService(config)
    except (ConfigError, HomeInUse, RunConfigError) as exc:
        print(f"reelgraph serve: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        print(f"reelgraph serve: error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        service.stop()
        return 2
    bound_port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    auth = "bearer tokens required" if config.auth_required else "no authentication (loopback only)"
    print(f"reelgraph: serving on http://{shown}:{bound_port} (API under /v1, {auth})", flush=True)
    app = create_app(config, service)
    server = _Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5, lifespan="on"),
        service,
    )
    server.run(sockets=[sock])
    return 0
