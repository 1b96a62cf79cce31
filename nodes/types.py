"""The node-type API: what a node type declares and what its implementation receives."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..comfy_workflows.pool import ComfyPool

ValueType = Literal["string", "integer", "number", "boolean", "json", "image", "video", "audio", "file"]
VALUE_TYPES: tuple[str, ...] = ValueType.__args__  # type: ignore[attr-defined]
# Values of these types are files: they live in the content-addressed store and reach
# implementations as paths.
FILE_TYPES = frozenset({"image", "video", "audio", "file"})
Placement = Literal["local", "comfy", "both"]


@dataclass(frozen=True)
class Port:
    """One typed input or output.

    For an input, ``is_list`` means the node takes the whole list at once (it aggregates);
    an input without it runs the node once per element when a list arrives (fan-out).
    For an output, ``is_list`` means the node returns a list, which fans out downstream.
    """

    name: str
    type: ValueType
    is_list: bool = False
    optional: bool = False
    default: Any = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in VALUE_TYPES:
            raise ValueError(f"port {self.name!r}: unknown value type {self.type!r}")


@dataclass(frozen=True)
class DownstreamUse:
    """A child execution that will consume this execution's ``output`` through its ``input``.

    ``inputs`` holds the child's other input values, already known (scalars only). An
    implementation that can compute the child's result as a by-product (e.g. one ComfyUI prompt
    for i2v followed by interpolation) hands it over with :meth:`NodeContext.prefill`."""

    node_id: str
    node_type: str
    input: str
    output: str
    element: int | None
    inputs: Mapping[str, Any]


class NodeContext:
    """What an implementation gets besides its inputs: its own work directory and progress, and
    the run's ComfyUI pool (``comfy``) when it has one, for node types with a ComfyUI placement.
    ``report_cost`` records what the execution actually cost (e.g. from a provider's usage)."""

    def __init__(
        self,
        work_dir: Path,
        node_id: str,
        element: int | None,
        report_progress: Callable[[float, str], None] | None = None,
        cancelled: threading.Event | None = None,
        comfy: ComfyPool | None = None,
        downstream: tuple[DownstreamUse, ...] = (),
    ) -> None:
        self.work_dir = work_dir
        self.node_id = node_id
        self.element = element
        self._report_progress = report_progress
        self.cancelled = cancelled or threading.Event()
        self.comfy = comfy
        self.cost: float | None = None  # USD reported by the implementation; None: nothing reported
        self.downstream = downstream
        self.prefilled: list[tuple[DownstreamUse, Mapping[str, Any]]] = []

    def prefill(self, use: DownstreamUse, outputs: Mapping[str, Any]) -> None:
        """Hand over ``use``'s outputs, as its implementation would return them (files written in
        this work directory). The engine keeps them as that child's result only if the child's
        inputs turn out exactly as assumed; otherwise the child runs normally."""
        if use not in self.downstream:
            raise ValueError(f"{use.node_id!r} is not a downstream use of {self.node_id!r}")
        self.prefilled.append((use, dict(outputs)))

    def progress(self, fraction: float, message: str = "") -> None:
        if self._report_progress is not None:
            self._report_progress(max(0.0, min(1.0, fraction)), message)

    def path(self, name: str) -> Path:
        """A file path inside this execution's private work directory."""
        return self.work_dir / name

    def report_cost(self, usd: float) -> None:
        """Add to what this execution cost in USD (e.g. a provider's billed usage). The engine
        records it; when nothing is reported it records the node type's ``estimate_cost``."""
        if math.isfinite(usd) and usd >= 0:
            self.cost = (self.cost or 0.0) + usd


NodeFunction = Callable[..., Mapping[str, Any]]


class NodeFailure(Exception):
    """Raised by an implementation for an expected failure; the message is shown as the cause."""


@dataclass(frozen=True)
class NodeType:
    """A node type. ``impl_version`` enters every cache key: bump it when outputs would change."""

    id: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    run: NodeFunction
    impl_version: str = "1"
    deterministic: bool = True
    placement: Placement = "local"
    description: str = ""
    category: str = ""
    # Named resources held while running, e.g. {"ffmpeg": 1}; the engine bounds each by its limit.
    resources: Mapping[str, int] = field(default_factory=dict)
    # Facts outside the inputs that change outputs (tool versions, model digests); computed once.
    environment: Callable[[], Mapping[str, Any]] | None = None
    # Per-execution facts outside the graph, from the execution's input values (e.g. a digest of
    # the files in a folder input, like ComfyUI's IS_CHANGED); they enter that execution's key.
    fingerprint: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    # Estimated cost in USD of one execution from its input values (None: free or unknown).
    estimate_cost: Callable[[Mapping[str, Any]], float | None] | None = None

    def input(self, name: str) -> Port | None:
        return next((port for port in self.inputs if port.name == name), None)

    def output(self, name: str) -> Port | None:
        return next((port for port in self.outputs if port.name == name), None)


def node_type(
    id: str,
    *,
    inputs: list[Port],
    outputs: list[Port],
    impl_version: str = "1",
    deterministic: bool = True,
    placement: Placement = "local",
    category: str = "",
    resources: Mapping[str, int] | None = None,
    environment: Callable[[], Mapping[str, Any]] | None = None,
    fingerprint: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    estimate_cost: Callable[[Mapping[str, Any]], float | None] | None = None,
) -> Callable[[NodeFunction], NodeType]:
    """Decorator turning ``fn(ctx, **inputs) -> {output: value}`` into a NodeType."""

    def wrap(fn: NodeFunction) -> NodeType:
        return NodeType(
            id=id,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            run=fn,
            impl_version=impl_version,
            deterministic=deterministic,
            placement=placement,
            description=(fn.__doc__ or "").strip(),
            category=category,
            resources=dict(resources or {}),
            environment=environment,
            fingerprint=fingerprint,
            estimate_cost=estimate_cost,
        )

    return wrap


def value_matches(value: Any, value_type: str) -> bool:
    """Whether a Python value fits a scalar port type (file types are checked by the engine)."""
    if value_type == "string":
        return isinstance(value, str)
    if value_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if value_type == "number":
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
        )
    if value_type == "boolean":
        return isinstance(value, bool)
    if value_type in FILE_TYPES:
        return isinstance(value, (str, Path))
    return True  # json: anything JSON can hold; canonical_json refuses the rest


def type_label(port: Port) -> str:
    return f"list of {port.type}" if port.is_list else port.type
