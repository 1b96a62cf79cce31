"""HTTP for provider adapters: one session, timeouts, retries on 429/5xx honouring Retry-After,
and failures that name the provider and the cause (never the key)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..types import NodeFailure

if TYPE_CHECKING:
    import requests

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})  # 529: Anthropic "overloaded"


class ProviderError(NodeFailure):
    """A provider answered with an error, or could not be reached."""


def secret(env_name: str, provider: str) -> str:
    """A key from the environment, the only place keys come from."""
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise ProviderError(f"{provider}: set the environment variable {env_name} to use this provider")
    return value


def base_url(env_name: str, default: str) -> str:
    """Endpoint override (self-hosted gateways, tests on loopback)."""
    return os.environ.get(env_name, "").strip().rstrip("/") or default


def request(
    provider: str,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    params: Mapping[str, Any] | None = None,
    timeout: float = 60.0,
    attempts: int = 4,
    max_backoff: float = 30.0,
    stream: bool = False,
) -> requests.Response:
    """Send a request, retrying transient failures with exponential backoff; raise ProviderError."""
    import requests  # here, not at the top: adapters load with the node registry, requests only when they call

    delay = 0.5
    last_error = ""
    for attempt in range(1, attempts + 1):
        try:
            response = requests.request(
                method, url, headers=dict(headers or {}), json=json_body, params=params, timeout=timeout, stream=stream
            )
        except requests.RequestException as exc:
            last_error = f"could not reach {url.split('?')[0]}: {type(exc).__name__}"
        else:
            if response.status_code < 400:
                return response
            last_error = f"HTTP {response.status_code}: {_error_text(response)}"
            if response.status_code not in RETRY_STATUSES:
                break
            retry_after = _retry_after(response)
            if retry_after is not None:
                delay = retry_after
        if attempt < attempts:
            time.sleep(min(delay, max_backoff))
            delay *= 2
    raise ProviderError(f"{provider}: {last_error}")


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason
    if isinstance(body, Mapping):
        error = body.get("error", body.get("detail", body.get("message", body)))
        if isinstance(error, Mapping):
            error = error.get("message", error)
        return str(error)[:300]
    return str(body)[:300]
