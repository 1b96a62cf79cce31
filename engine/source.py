"""Digests of node implementations' source, to notice a changed implementation whose
``impl_version`` was not bumped (engine-anchors §7.4): warned about, never silently invalidated,
because source hashing misses helpers and flags harmless edits alike."""

from __future__ import annotations

import hashlib
import inspect
from functools import cache

from ..nodes.types import NodeFunction


@cache
def source_digest(function: NodeFunction) -> str | None:
    """A short digest of the function's source text; None where Python cannot show it."""
    try:
        text = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stale_source_warning(type_id: str, impl_version: str) -> str:
    return (
        f"node type {type_id}'s implementation changed since its cached results were made, but its impl_version "
        f"is still {impl_version!r}: they are reused as they are; bump impl_version if outputs would change"
    )
