"""Canonical JSON and SHA-256 digests: the one way every key and value digest is computed."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

DIGEST_PREFIX = "sha256:"


class UnhashableValueError(TypeError):
    """A value cannot be put into a cache key (NaN, infinity, or a non-JSON type)."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, NaN/Infinity refused, so equal values give equal bytes."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise UnhashableValueError(f"value cannot be hashed: {exc}") from exc


def digest_bytes(data: bytes) -> str:
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def digest_json(value: Any) -> str:
    return digest_bytes(canonical_json(value))


def digest_file(path: str, chunk_size: int = 1 << 20) -> tuple[str, int]:
    """Digest and size of a file, read in chunks so large videos never sit in memory."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            sha.update(chunk)
            size += len(chunk)
    return DIGEST_PREFIX + sha.hexdigest(), size


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None
