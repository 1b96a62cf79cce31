"""Content-addressed artifact store: blobs by digest plus an action cache (key -> outputs + provenance).

``ArtifactStore`` is the interface; ``LocalStore`` keeps everything in one directory. Writes are
atomic and ordered (blobs, then the action entry that names them), and an action entry is only
trusted while every blob it names is present, so a crash can never leave a hit without its bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .canonical import DIGEST_PREFIX, digest_file, is_digest


@dataclass(frozen=True)
class ActionResult:
    """What one execution produced. ``outputs`` holds value documents (files as artifact refs)."""

    key: str
    outputs: dict[str, Any]
    blobs: tuple[str, ...]  # every blob digest the outputs reference
    provenance: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "outputs": self.outputs, "blobs": list(self.blobs), "provenance": self.provenance}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActionResult:
        return cls(data["key"], data["outputs"], tuple(data["blobs"]), data["provenance"])


@dataclass(frozen=True)
class StoredAction:
    key: str
    node_type: str
    created: float
    size: int  # bytes of the blobs it references


class ArtifactStore(Protocol):
    def put_file(self, path: Path, *, move: bool) -> tuple[str, int]: ...
    def blob_path(self, digest: str) -> Path: ...
    def has_blob(self, digest: str) -> bool: ...
    def get_action(self, key: str) -> ActionResult | None: ...
    def put_action(self, result: ActionResult) -> None: ...
    def delete_action(self, key: str) -> None: ...
    def iter_actions(self) -> Iterator[ActionResult]: ...
    def iter_blobs(self) -> Iterator[tuple[str, int, float]]: ...
    def delete_blob(self, digest: str) -> None: ...
    def lock(self, key: str) -> contextlib.AbstractContextManager[None]: ...


def _hex(digest: str) -> str:
    if not is_digest(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest[len(DIGEST_PREFIX):]


class LocalStore:
    """Store in a local directory: ``cas/sha256/ab/<hex>``, ``ac/ab/<hex>.json``, ``locks/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cas = root / "cas" / "sha256"
        self._ac = root / "ac"
        self._locks = root / "locks"
        self._tmp = root / "tmp"
        for folder in (self._cas, self._ac, self._locks, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)

    # blobs
    def blob_path(self, digest: str) -> Path:
        hexdigest = _hex(digest)
        return self._cas / hexdigest[:2] / hexdigest

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def put_file(self, path: Path, *, move: bool) -> tuple[str, int]:
        digest, size = digest_file(str(path))
        target = self.blob_path(digest)
        if target.is_file():
            if move:
                path.unlink()
            return digest, size
        target.parent.mkdir(exist_ok=True)
        staging = self._tmp / f"{os.getpid()}-{time.monotonic_ns()}-{target.name}"
        try:
            if move:
                try:
                    os.replace(path, staging)
                except OSError:  # another filesystem
                    shutil.copyfile(path, staging)
                    path.unlink()
            else:
                shutil.copyfile(path, staging)
            os.chmod(staging, 0o444)  # blobs are immutable; nodes get them read-only
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
        return digest, size

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        for folder in self._cas.iterdir():
            for blob in folder.iterdir():
                stat = blob.stat()
                yield DIGEST_PREFIX + blob.name, stat.st_size, stat.st_mtime

    def delete_blob(self, digest: str) -> None:
        self.blob_path(digest).unlink(missing_ok=True)

    # action cache
    def _action_path(self, key: str) -> Path:
        hexkey = _hex(key)
        return self._ac / hexkey[:2] / f"{hexkey}.json"

    def get_action(self, key: str) -> ActionResult | None:
        try:
            data = json.loads(self._action_path(key).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        result = ActionResult.from_json(data)
        # an entry whose bytes were collected or lost is a miss, never a broken hit
        if not all(self.has_blob(digest) for digest in result.blobs):
            return None
        return result

    def put_action(self, result: ActionResult) -> None:
        target = self._action_path(result.key)
        target.parent.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=self._tmp, delete=False, suffix=".json") as handle:
            json.dump(result.to_json(), handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)

    def delete_action(self, key: str) -> None:
        self._action_path(key).unlink(missing_ok=True)

    def iter_actions(self) -> Iterator[ActionResult]:
        for folder in self._ac.iterdir():
            for entry in folder.glob("*.json"):
                try:
                    yield ActionResult.from_json(json.loads(entry.read_bytes()))
                except (ValueError, KeyError):
                    continue

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Exclusive per-key lock across processes on this machine: identical work runs once."""
        path = self._locks / f"{_hex(key)[:16]}.lock"
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
