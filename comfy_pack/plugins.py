"""Node types of installed plugins (the ``reelgraph.nodes`` entry points) as pack nodes.

ComfyUI needs every class the moment it imports the pack, but importing a plugin may import
anything (numpy, torch, a provider SDK), and the pack must keep ComfyUI's start cheap. So at
start the pack reads only the installed distributions' metadata (``importlib.metadata``, no
plugin code): the plugins' declarations come from a cache in the reelgraph home, keyed by each
plugin's distribution, version, entry point and RECORD. When the plugins changed (or on the
first start) they are declared by a separate Python process, ``python -m
reelgraph.comfy_pack.plugins``, which imports them there and prints their declarations. Plugin
code enters ComfyUI's process only when one of its nodes first runs (``runtime.py``).

Plugins import ``reelgraph`` by its package name, so they need reelgraph installed in ComfyUI's
Python (``pip install -e`` of this clone); their declarations carry ``"plugin": true`` so that
the runtime runs them with that package's node API.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "reelgraph.nodes"  # nodes.registry.ENTRY_POINT_GROUP (checked by the tests)
DECLARE_TIMEOUT_S = 120


def reelgraph_home() -> Path:
    """The same rule as ``engine.default_home`` (not imported: the engine is heavy to import)."""
    if os.environ.get("REELGRAPH_HOME"):
        return Path(os.environ["REELGRAPH_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "reelgraph"


def cache_path() -> Path:
    return reelgraph_home() / "comfy_pack" / "plugin_declarations.json"


def installed_plugins() -> list[str]:
    """One line per installed entry point: what its declarations depend on. Reading it imports
    no plugin code."""
    keys = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist
        name, version = (dist.metadata["Name"], dist.version) if dist is not None else ("?", "?")
        record = (dist.read_text("RECORD") or "") if dist is not None else ""
        digest = hashlib.sha256(record.encode()).hexdigest()[:16]
        keys.append(f"{name} {version} {entry.name}={entry.value} record:{digest}")
    return sorted(keys)


def plugin_declarations() -> list[dict[str, Any]]:
    """Declarations of every installed plugin's node types, from the cache when it is current,
    else declared in a child process (and cached). A failure is reported and leaves the pack
    with its built-in nodes only."""
    keys = installed_plugins()
    if not keys:
        return []
    path = cache_path()
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("plugins") == keys:
            return list(cached["nodes"])
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    started = time.monotonic()
    document, reason = _declare_in_child()
    if document is None:
        print(f"reelgraph: plugin node types are not in the pack: declaring them failed ({reason}); "
              "is reelgraph installed in this Python (pip install -e)?", file=sys.stderr)
        return []
    for problem in document.get("errors", []):
        print(f"reelgraph: warning: {problem}", file=sys.stderr)
    document["plugins"] = keys  # what the child saw is what this process saw, a moment ago
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:  # a read-only home only costs the next start the same declaring
        print(f"reelgraph: warning: cannot cache plugin declarations in {path}: {exc}", file=sys.stderr)
    print(f"reelgraph: declared {len(document['nodes'])} plugin node type(s) of {len(keys)} plugin(s) "
          f"in {time.monotonic() - started:.1f}s (cached in {path})", file=sys.stderr)
    return list(document["nodes"])


def _declare_in_child() -> tuple[dict[str, Any] | None, str]:
    try:
        proc = subprocess.run([sys.executable, "-m", "reelgraph.comfy_pack.plugins"], capture_output=True, text=True,
                              timeout=DECLARE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    try:
        return json.loads(proc.stdout), ""
    except ValueError as exc:
        return None, f"unreadable output: {exc}"


def declare_installed() -> dict[str, Any]:
    """Import the plugins (in this process) and declare the node types they add."""
    from ..nodes.builtin import NODE_TYPES as BUILTIN_TYPES
    from ..nodes.pipeline import NODE_TYPES as PIPELINE_TYPES
    from ..nodes.registry import NodeRegistry
    from .declare import declare_all

    builtin = {t.id for t in [*BUILTIN_TYPES, *PIPELINE_TYPES]}
    registry = NodeRegistry([*BUILTIN_TYPES, *PIPELINE_TYPES])
    registry.load_entry_points()
    added = [registry.get(type_id) for type_id in registry.ids() if type_id not in builtin]
    return {"nodes": [{**declaration, "plugin": True} for declaration in declare_all(added)],
            "errors": registry.load_errors}


def main() -> None:
    print(json.dumps(declare_installed(), ensure_ascii=False))


if __name__ == "__main__":
    main()
