"""Cache maintenance: list action entries, and collect what recent runs no longer use."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .records import RunRecords
from .store import ArtifactStore, StoredAction


def list_actions(store: ArtifactStore) -> list[StoredAction]:
    sizes = {digest: size for digest, size, _ in store.iter_blobs()}
    entries = [
        StoredAction(
            key=result.key,
            node_type=str(result.provenance.get("node_type", "?")),
            created=float(result.provenance.get("started", 0.0)),
            size=sum(sizes.get(blob, 0) for blob in set(result.blobs)),
        )
        for result in store.iter_actions()
    ]
    return sorted(entries, key=lambda entry: entry.created, reverse=True)


@dataclass(frozen=True)
class GcReport:
    actions_removed: int
    blobs_removed: int
    bytes_freed: int
    actions_kept: int


def collect_garbage(
    store: ArtifactStore, records: RunRecords, keep_runs: int, grace_seconds: float, dry_run: bool = False
) -> GcReport:
    """Keep action entries used by the last ``keep_runs`` runs or younger than the grace period,
    then remove blobs no kept entry references (also only past the grace period, so a run that is
    writing right now never loses its bytes)."""
    now = time.time()
    keep = records.keys_of_recent_runs(keep_runs)
    referenced: set[str] = set()
    removed = kept = 0
    for result in list(store.iter_actions()):
        young = now - float(result.provenance.get("started", 0.0)) < grace_seconds
        if result.key in keep or young:
            referenced.update(result.blobs)
            kept += 1
            continue
        removed += 1
        if not dry_run:
            store.delete_action(result.key)
    blobs_removed = bytes_freed = 0
    for digest, size, mtime in list(store.iter_blobs()):
        if digest in referenced or now - mtime < grace_seconds:
            continue
        blobs_removed += 1
        bytes_freed += size
        if not dry_run:
            store.delete_blob(digest)
    return GcReport(removed, blobs_removed, bytes_freed, kept)
