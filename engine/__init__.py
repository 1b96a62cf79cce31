"""The engine: where state lives (store, run records, work dirs) and the run/plan entry points."""

from __future__ import annotations

import os
from pathlib import Path

from ..graphs.validate import BoundRecipe
from .plan import PlanEntry, plan
from .records import RunRecords
from .runner import RunOptions, RunResult, Runner
from .store import ArtifactStore, LocalStore


def default_home() -> Path:
    """``$REELGRAPH_HOME``, else ``$XDG_CACHE_HOME/reelgraph`` (``~/.cache/reelgraph``)."""
    if os.environ.get("REELGRAPH_HOME"):
        return Path(os.environ["REELGRAPH_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "reelgraph"


class Engine:
    """One state directory: ``store/`` (blobs + action cache), ``runs.sqlite``, ``work/`` (per-run)."""

    def __init__(self, home: Path | None = None, store: ArtifactStore | None = None) -> None:
        self.home = home or default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.store = store or LocalStore(self.home / "store")
        self.records = RunRecords(self.home / "runs.sqlite")

    def run(self, bound: BoundRecipe, options: RunOptions | None = None) -> RunResult:
        return Runner(bound, self.store, self.records, self.home / "work", options or RunOptions()).run()

    def plan(
        self, bound: BoundRecipe, outputs: tuple[str, ...] | None = None, force: frozenset[str] = frozenset()
    ) -> list[PlanEntry]:
        return plan(bound, self.store, self.records, outputs, force)

    def close(self) -> None:
        self.records.close()


__all__ = ["Engine", "PlanEntry", "RunOptions", "RunResult", "default_home"]
