"""Server settings: command-line options plus environment variables (the one place they are read)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

ENV_TOKENS = "REELGRAPH_API_TOKENS"  # comma-separated bearer tokens
ENV_RATE = "REELGRAPH_API_RATE"  # sustained requests per second, per token
ENV_BURST = "REELGRAPH_API_BURST"  # bucket size, per token
ENV_MAX_BODY = "REELGRAPH_API_MAX_BODY"  # bytes
ENV_MAX_NODES = "REELGRAPH_API_MAX_NODES"
ENV_NODE_WORKERS = "REELGRAPH_API_NODE_WORKERS"  # parallel node executions inside one run
ENV_WEBHOOK_SECRET = "REELGRAPH_WEBHOOK_SECRET"
ENV_WEBHOOK_ALLOW_PRIVATE = "REELGRAPH_WEBHOOK_ALLOW_PRIVATE"  # 1: allow loopback/private targets
ENV_WEBHOOK_ATTEMPTS = "REELGRAPH_WEBHOOK_ATTEMPTS"
ENV_WEBHOOK_BACKOFF = "REELGRAPH_WEBHOOK_BACKOFF"  # seconds before the first retry; doubles each time


class ConfigError(ValueError):
    """Settings the server refuses to start with."""


@dataclass(frozen=True)
class ServerConfig:
    home: Path
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2  # runs executed at once by the in-process job pool
    node_workers: int = max(2, os.cpu_count() or 2)  # like `reelgraph run --workers`
    tokens: frozenset[str] = frozenset()
    rate: float = 50.0
    burst: int = 100
    max_body: int = 1 << 20
    max_nodes: int = 2000
    webhook_secret: str | None = None  # None: generated once and kept in <home>/webhook-secret
    webhook_allow_private: bool = False
    comfy_urls: tuple[str, ...] = ()  # ComfyUI instances; none: those of `reelgraph comfy up`, if any
    webhook_attempts: int = 8
    webhook_backoff: float = 1.0

    @property
    def auth_required(self) -> bool:
        return bool(self.tokens)

    def check(self) -> None:
        if self.workers < 1 or self.node_workers < 1:
            raise ConfigError("--workers and the node workers must be at least 1")
        if self.rate <= 0 or self.burst < 1:
            raise ConfigError(f"{ENV_RATE} must be > 0 and {ENV_BURST} >= 1")
        if not self.tokens and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host!r} without authentication: set {ENV_TOKENS}"
                " (comma-separated bearer tokens) or pass --token-file, or listen on 127.0.0.1"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def _number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {text!r}") from None


def read_tokens(token_file: Path | None) -> frozenset[str]:
    tokens = {t.strip() for t in os.environ.get(ENV_TOKENS, "").split(",") if t.strip()}
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {token_file}: {exc.strerror}") from None
        tokens.update(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return frozenset(tokens)


def load_config(
    home: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 2,
    token_file: Path | None = None,
    comfy_urls: tuple[str, ...] = (),
) -> ServerConfig:
    """Settings from the command line and the environment; ConfigError names what is wrong."""
    secret = os.environ.get(ENV_WEBHOOK_SECRET, "").strip() or None
    config = ServerConfig(
        home=home,
        host=host,
        port=port,
        workers=workers,
        comfy_urls=comfy_urls,
        node_workers=int(_number(ENV_NODE_WORKERS, max(2, os.cpu_count() or 2))),
        tokens=read_tokens(token_file),
        rate=_number(ENV_RATE, 50.0),
        burst=int(_number(ENV_BURST, 100)),
        max_body=int(_number(ENV_MAX_BODY, 1 << 20)),
        max_nodes=int(_number(ENV_MAX_NODES, 2000)),
        webhook_secret=secret,
        webhook_allow_private=os.environ.get(ENV_WEBHOOK_ALLOW_PRIVATE, "").strip().lower() in ("1", "true", "yes"),
        webhook_attempts=int(_number(ENV_WEBHOOK_ATTEMPTS, 8)),
        webhook_backoff=_number(ENV_WEBHOOK_BACKOFF, 1.0),
    )
    config.check()
    return config
