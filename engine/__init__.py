"""The engine: where state lives (store, run records, work dirs) and the run/plan entry points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..graphs.validate import BoundRecipe
from .comfy_groups import fuse_comfy_groups
from .plan import PlanEntry, plan
from .records import RunRecords
from .runner import Runner, RunOptions, RunResult

from .store import ArtifactStore, LocalStore

if TYPE_CHECKING:
    from ..comfy_workflows.keys import VersionSource
    from ..comfy_workflows.pool import ComfyPool


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
        from ..comfy_workflows.keys import keys_from

        options = options or RunOptions()
        # each connected group of ComfyUI nodes runs as one prompt (see comfy_groups); the runner sees it as one node
        fused = fuse_comfy_groups(bound, self.store)
        # ComfyUI-placed executions are keyed with the versions of the pool's instances, or of the
        # ones this home last ran on while none answers (comfy_workflows/seen.py)
        with keys_from(options.comfy, self._seen_instances):
            result = fused.run(
                lambda recipe, records, opts: Runner(recipe, self.store, records, self.home / "work", opts).run(),
                self.records, options)
        if options.comfy is not None:
            from ..comfy_workflows.seen import remember

            remember(self.home, options.comfy)
        return result

    def plan(
        self,
        bound: BoundRecipe,
        outputs: tuple[str, ...] | None = None,
        force: frozenset[str] = frozenset(),
        comfy: ComfyPool | None = None,
    ) -> list[PlanEntry]:
        """``comfy``: the instances a run would use; ComfyUI-placed keys hold their versions."""
        from ..comfy_workflows.keys import keys_from

        with keys_from(comfy, self._seen_instances):
            return plan(bound, self.store, self.records, outputs, force)

    def _seen_instances(self) -> VersionSource | None:
        from ..comfy_workflows.seen import recall  # loads the pool's modules: only when a key needs it

        return recall(self.home)

    def close(self) -> None:
        self.records.close()


__all__ = ["Engine", "PlanEntry", "RunOptions", "RunResult", "default_home"]
