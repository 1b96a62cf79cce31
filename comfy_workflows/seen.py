"""The ComfyUI instances a home's runs last used, kept so that results made there stay reusable
when no instance answers: on a laptop after the GPU box is gone, or after `comfy up`'s instances
were stopped.

The key of a ComfyUI-made result holds the versions of the instances that could make it
(``keys.py``). With no instance answering those versions are unknown, so every such result would
look stale, and the node would need an instance to run again: editing a subtitle would fail for
want of a GPU. So after a run with instances, their ComfyUI versions and ``/object_info`` are
written to ``<home>/comfy/seen-instances.json.gz``, and keys computed while no instance answers
use them. A result is then reused exactly when it would be on those instances; anything that must
run still needs a live instance. As soon as an instance answers, only live instances count.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .schema import ObjectInfo

if TYPE_CHECKING:  # the pool's modules load requests and websocket-client: only when a key needs them
    from .pool import ComfyJob, ComfyPool, Known

log = logging.getLogger(__name__)
FILE = Path("comfy") / "seen-instances.json.gz"


class SeenInstances:
    """The versions of instances that no longer answer, for keys (same interface as the pool's)."""

    def __init__(self, known: list[Known]) -> None:
        self.known = known

    def versions(self, job: ComfyJob) -> list[dict[str, Any]]:
        from .pool import job_versions

        return job_versions(self.known, job)

    def class_versions(self, class_types: frozenset[str]) -> list[dict[str, Any]]:
        from .pool import class_set_versions

        return class_set_versions(self.known, class_types)


def remember(home: Path, pool: ComfyPool) -> None:
    """Record the pool's instances (those whose schemas it read) as the home's last seen ones.
    Rewritten only when they changed; a failure to write is logged, never fatal to a run."""
    known = pool.known()
    if not known:
        return
    document = [{"name": name, "comfyui": version, "object_info": info.raw} for name, info, version in known]
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    path = home / FILE
    try:
        if _read(path).get("digest") == digest:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.part")
        partial.write_bytes(gzip.compress(json.dumps({"digest": digest, "instances": document}).encode(), 6))
        partial.replace(path)
    except OSError as exc:
        log.warning("could not record the ComfyUI instances in %s: %s", path, exc)


def recall(home: Path) -> SeenInstances | None:
    """The home's last seen instances, or None when it has none (or the record is unreadable)."""
    instances = _read(home / FILE).get("instances")
    if not isinstance(instances, list) or not instances:
        return None
    try:
        return SeenInstances([(str(i["name"]), ObjectInfo(i["object_info"]), str(i["comfyui"])) for i in instances])
    except (KeyError, TypeError) as exc:
        log.warning("ignoring %s: %s", home / FILE, exc)
        return None


def recorded_note(home: Path) -> str:
    """A line for a run or plan without instances: what keys ComfyUI-made results ('' if nothing)."""
    try:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime((home / FILE).stat().st_mtime))
    except OSError:
        return ""
    return f"ComfyUI-made results are keyed with the instances this home last ran on (recorded {when})"


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(gzip.decompress(path.read_bytes()))
    except FileNotFoundError:
        return {}
    except (OSError, EOFError, ValueError) as exc:  # a damaged record is as good as none
        log.warning("ignoring %s: %s", path, exc)
        return {}
    return document if isinstance(document, dict) else {}
