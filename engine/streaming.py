"""Element-level hand-off between nodes: what may start before its upstream node has finished,
and results an execution computed for a child as a by-product (prefills).

A fanned node's element ``i`` only needs element ``i`` of the fanned nodes it links to, so the
runner starts it as soon as those are settled instead of waiting for every element upstream: a
GPU chain (i2v -> interpolate -> segment) keeps flowing per scene. Aggregating inputs (``is_list``)
and list outputs (flattened across elements, so indices do not line up) still wait for the whole
node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..graphs.model import Link
from ..graphs.validate import BoundNode
from ..nodes.types import FILE_TYPES, DownstreamUse, NodeType
from .values import FAILED, PortValue, normalize_literal


class _Pending:
    """An element of a fanned node that has not settled yet."""

    def __repr__(self) -> str:
        return "PENDING"


PENDING: Any = _Pending()


class PartialOutputs:
    """The per-element outputs of a fanned node while its elements settle, shaped like the
    node's final (fanned) outputs, so ``expand`` can pick settled elements from them."""

    def __init__(self, node_type: NodeType, count: int) -> None:
        self.count = count
        self.values: dict[str, PortValue] = {
            port.name: PortValue([PENDING] * count, is_list=True) for port in node_type.outputs if not port.is_list
        }
        self.settled: set[int] = set()

    def settle(self, element: int, outputs: Mapping[str, Any] | Any) -> None:
        for name, value in self.values.items():
            value.elements[element] = FAILED if outputs is FAILED else outputs[name]
        self.settled.add(element)


@dataclass(frozen=True)
class StreamSources:
    """How a not-yet-started node can stream: its fanned upstream nodes still settling, and the
    element count every fanned input agrees on."""

    pending: tuple[str, ...]
    count: int


def stream_sources(
    node: BoundNode,
    finished: Mapping[str, Mapping[str, PortValue]],
    partial: Mapping[str, PartialOutputs],
) -> StreamSources | None:
    """Whether ``node`` can start element by element now; None when it must wait for whole nodes."""
    node_type = node.node_type
    if node_type is None:
        return None
    pending: list[str] = []
    lengths: set[int] = set()
    for port in node_type.inputs:
        value = node.inputs.get(port.name, port.default)
        if not isinstance(value, Link):
            continue
        output = str(value.output)
        if value.node in finished:
            port_value = finished[value.node][output]
            if port_value.is_list and not port.is_list:
                lengths.add(len(port_value.elements))
            continue
        source = partial.get(value.node)
        if source is None or port.is_list or output not in source.values:
            return None  # the input needs the whole node, or the node is not fanned
        pending.append(value.node)
        lengths.add(source.count)
    if not pending or len(lengths) != 1:
        return None  # nothing to stream, or mismatched lengths: the whole-node path reports it
    return StreamSources(tuple(dict.fromkeys(pending)), lengths.pop())


def upstream_view(
    node: BoundNode, finished: Mapping[str, Mapping[str, PortValue]], partial: Mapping[str, PartialOutputs]
) -> dict[str, Mapping[str, PortValue]]:
    """The upstream mapping ``expand`` reads: finished nodes' values, partial values for the rest."""
    view: dict[str, Mapping[str, PortValue]] = {}
    for value in node.inputs.values():
        if isinstance(value, Link):
            view[value.node] = finished[value.node] if value.node in finished else partial[value.node].values
    return view


def downstream_uses(
    parent: BoundNode,
    element: int | None,
    children: list[BoundNode],
    finished: Mapping[str, Mapping[str, PortValue]],
) -> tuple[DownstreamUse, ...]:
    """Child executions that will take one of ``parent``'s (non-list) outputs 1:1, with every other
    input already known as a scalar: the ones an implementation could compute ahead (prefill)."""
    parent_type = parent.node_type
    assert parent_type is not None
    uses: list[DownstreamUse] = []
    for child in children:
        child_type = child.node_type
        if child_type is None:
            continue
        linked: tuple[str, str] | None = None
        others: dict[str, Any] = {}
        for port in child_type.inputs:
            value = child.inputs.get(port.name, port.default)
            if isinstance(value, Link) and value.node == parent.id:
                output = parent_type.output(str(value.output))
                if linked is not None or port.is_list or output is None or output.is_list:
                    break
                linked = (port.name, output.name)
            elif isinstance(value, Link):
                known = finished.get(value.node)
                port_value = known[str(value.output)] if known is not None else None
                if port_value is None or port_value.is_list or port.type in FILE_TYPES or port_value.elements[0] is FAILED:
                    break
                others[port.name] = port_value.elements[0]
            elif port.type in FILE_TYPES:
                break
            else:
                others[port.name] = normalize_literal(port, value)
        else:
            if linked is not None:
                uses.append(DownstreamUse(child.id, child_type.id, linked[0], linked[1], element,
                                          MappingProxyType(others)))
    return tuple(uses)


@dataclass(frozen=True)
class Prefill:
    """A child's outputs computed by ``parent``; valid only if the child's inputs are ``expected``."""

    parent: str
    expected: Mapping[str, Any]
    outputs: Mapping[str, Any]
    blobs: tuple[str, ...]
