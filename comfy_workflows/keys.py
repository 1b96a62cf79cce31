"""The versions that decide a ComfyUI-placed execution's result, for its cache key.

An execution of a node type with a ComfyUI placement (video.i2v, image.generate,
video.interpolate) that goes to ComfyUI depends on the workflow the compiler makes (the digest of
every fragment and model table, ``compiler.templates_fingerprint``) and on the instance: its
ComfyUI version and the custom-node packs the workflow uses. :func:`fingerprint_for` gives such a
type the ``NodeType.fingerprint`` hook that adds both, only for executions that go to ComfyUI (a
``kenburns`` i2v or a ``blend`` interpolation keeps its key when a fragment or an instance changes):

``{"ComfyUI workflow templates": "<digest>",
"ComfyUI versions": [{"comfyui": "0.26.0", "packs": {"ComfyUI-Frame-Interpolation": "<digest>"}}]}``

* ``comfyui`` is what ``/system_stats`` reports; a pack is identified by the digest of the
  ``/object_info`` schemas of its classes that the compiled workflow uses (the only trace of a
  pack version ComfyUI serves over HTTP). A pack update that changes nothing in those schemas is
  therefore not seen; ``reelgraph comfy provision`` pins the pack commits for that reason.
* The list holds the distinct entries of every instance that could run the execution (whose
  schemas compile its workflow), sorted, so which of several equal instances runs it does not
  matter. With **mixed versions** the key names all of them: a result made while the pool mixes
  versions could have come from either, so it is reused only under the same mix and nothing
  is attributed to a single version it may not have had.
* Instances are those of the pool the keys are computed for (:func:`keys_from`); an instance
  that never answered contributes nothing until it does. With no pool, or none of its instances
  ever answering, the instances the home last ran on stand in (``seen.py``), so results made
  there are still reused; what must run still needs a live instance.

The engine calls the hook with the execution's scalar inputs only, so the pool reaches it through
:func:`keys_from`, bound around planning and running by whoever holds the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .pool import ComfyJob, ComfyPool

LABEL = "ComfyUI versions"  # reads as the subject of "changed" in `reelgraph plan`
TEMPLATES_LABEL = "ComfyUI workflow templates"


class VersionSource(Protocol):
    """Instances to take versions from: a live pool, or the ones last seen (``seen.py``)."""

    def versions(self, job: ComfyJob) -> list[dict[str, Any]]: ...

    def class_versions(self, class_types: frozenset[str]) -> list[dict[str, Any]]: ...


SeenLoader = Callable[[], VersionSource | None]
_SOURCES: ContextVar[tuple[ComfyPool | None, SeenLoader]] = ContextVar(
    "reelgraph_comfy_key_sources", default=(None, lambda: None))


@contextmanager
def keys_from(pool: ComfyPool | None, seen: SeenLoader | None = None) -> Iterator[None]:
    """Key ComfyUI-placed executions with ``pool``'s versions within this block (this thread, or
    this context); while no instance of it has answered, with ``seen()``'s (loaded once, when
    first needed). Keys are computed by the thread that plans or runs, so bind it there."""
    token = _SOURCES.set((pool, cache(seen or (lambda: None))))
    try:
        yield
    finally:
        _SOURCES.reset(token)


def _source() -> VersionSource | None:
    pool, seen = _SOURCES.get()
    return pool if pool is not None and pool.known() else seen()


def fingerprint_for(type_id: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The ``NodeType.fingerprint`` hook of a node type with a ComfyUI placement."""

    def fingerprint(inputs: Mapping[str, Any]) -> dict[str, Any]:
        return execution_versions(type_id, inputs, _source)

    return fingerprint


def group_fingerprint(class_types: frozenset[str]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The hook of a recipe's own group of ComfyUI nodes (``engine/comfy_groups.py``): the same
    versions, from the instances that have all of its classes."""

    def fingerprint(_inputs: Mapping[str, Any]) -> dict[str, Any]:
        source = _source()
        return {LABEL: source.class_versions(class_types) if source is not None else []}

    return fingerprint


def execution_versions(type_id: str, inputs: Mapping[str, Any],
                       source: Callable[[], VersionSource | None]) -> dict[str, Any]:
    """``{LABEL: [...]}`` for an execution that goes to ComfyUI, ``{}`` for one that runs locally
    (``source`` is asked only then: the last seen instances are read only when needed)."""
    from .compiler import templates_fingerprint
    from .placement import job_for_node  # lazy: node types import this module

    try:
        job = job_for_node(type_id, inputs, type_id)
    except Exception:  # noqa: BLE001 - a bad model name or a missing key: the node fails with it when it runs
        return {}
    if job is None:
        return {}
    versions = source()
    return {TEMPLATES_LABEL: templates_fingerprint(), LABEL: versions.versions(job) if versions is not None else []}
