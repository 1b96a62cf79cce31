"""Action keys (Merkle, REAPI-style) and the reasons a key differs from the last run's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..nodes.types import NodeType
from .canonical import digest_json

# Bump when the shape of the key document changes: every cached result becomes a miss.
# Optional fields ("nonce", "fingerprint") appear only when they carry something, so adding one
# leaves every other key as it was and needs no bump.
KEY_SCHEMA = 1


def key_document(
    node_type: NodeType,
    input_digests: Mapping[str, str],
    nonce: int,
    environment: Mapping[str, Any],
    fingerprint: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything that decides a node's outputs, and nothing else: node ids never enter it.

    ``fingerprint`` is the execution's facts from outside the graph (NodeType.fingerprint), by a
    label that reads as the subject of "changed", e.g. "files in input 'library'"."""
    document: dict[str, Any] = {
        "schema": KEY_SCHEMA,
        "type": node_type.id,
        "impl": node_type.impl_version,
        "inputs": dict(input_digests),
        "env": dict(environment),
    }
    if not node_type.deterministic:
        document["nonce"] = nonce
    if fingerprint:
        document["fingerprint"] = dict(fingerprint)
    return document


def action_key(document: Mapping[str, Any]) -> str:
    return digest_json(document)


def why_dirty(current: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str:
    """A plain sentence saying what changed since the last recorded execution."""
    if previous is None:
        return "never ran"
    reasons = []
    if previous.get("type") != current.get("type"):
        reasons.append(f"node type changed ({previous.get('type')} -> {current.get('type')})")
    if previous.get("schema") != current.get("schema"):
        reasons.append("cache key schema changed")
    if previous.get("impl") != current.get("impl"):
        reasons.append(f"impl_version changed ({previous.get('impl')} -> {current.get('impl')})")
    if previous.get("env") != current.get("env"):
        changed = sorted(
            name
            for name in set(previous.get("env", {})) | set(current.get("env", {}))
            if previous.get("env", {}).get(name) != current.get("env", {}).get(name)
        )
        reasons.append(f"environment changed ({', '.join(changed)})")
    if previous.get("nonce") != current.get("nonce"):
        reasons.append(f"regenerated (nonce {previous.get('nonce')} -> {current.get('nonce')})")
    old_inputs, new_inputs = previous.get("inputs", {}), current.get("inputs", {})
    changed_inputs = sorted(n for n in set(old_inputs) | set(new_inputs) if old_inputs.get(n) != new_inputs.get(n))
    if changed_inputs:
        reasons.append("input " + ", ".join(repr(n) for n in changed_inputs) + " changed")
    old_facts, new_facts = previous.get("fingerprint", {}), current.get("fingerprint", {})
    changed_facts = sorted(n for n in set(old_facts) | set(new_facts) if old_facts.get(n) != new_facts.get(n))
    if changed_facts:
        reasons.append(", ".join(changed_facts) + " changed")
    return "; ".join(reasons) or "result is no longer in the cache"
