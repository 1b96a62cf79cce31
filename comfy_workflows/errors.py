"""Failures of the ComfyUI backend, and mapping ComfyUI's error payloads back to recipe nodes.

Every exception is a ``NodeFailure``: its message is a plain sentence that names the recipe node,
the ComfyUI node and the cause, so the engine can show it as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..nodes.types import NodeFailure
from .schema import PromptCheck, WorkflowError


@dataclass(frozen=True)
class MappedError:
    """A ComfyUI problem traced back to the recipe node whose compiled fragment holds the node."""

    recipe_node: str | None
    comfy_node: str | None
    class_type: str | None
    message: str

    def __str__(self) -> str:
        where = f"recipe node '{self.recipe_node}'" if self.recipe_node else "workflow"
        comfy = f" (ComfyUI node {self.comfy_node} {self.class_type})" if self.comfy_node else ""
        return f"{where}{comfy}: {self.message}"


class ComfyError(NodeFailure):
    """Base class; ``errors`` holds the mapped problems when there are several."""

    def __init__(self, message: str, errors: list[MappedError] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])


class CompileError(ComfyError):
    """A recipe node cannot become a workflow for this instance (missing node class, model file...)."""


class PromptRejected(ComfyError):
    """``POST /prompt`` refused the workflow (validation errors)."""


class ExecutionFailed(ComfyError):
    """A node raised while the prompt ran (``execution_error``)."""


class Interrupted(ComfyError):
    """The prompt was interrupted (``execution_interrupted``)."""


class InstanceLost(ComfyError):
    """The ComfyUI process stopped answering while our prompt was queued or running."""


class ComfyTimeout(ComfyError):
    """The prompt did not finish in time."""


class ComfyHTTPError(ComfyError):
    """An HTTP call to ComfyUI failed for a reason other than the above."""


def _recipe_node(node_map: Mapping[str, str], comfy_node: str | None) -> str | None:
    if comfy_node is None:
        return None
    if comfy_node in node_map:
        return node_map[comfy_node]
    # Subgraph-flattened ids ("129:98") belong to their outermost instance node.
    return node_map.get(str(comfy_node).split(":", 1)[0])


def map_workflow_errors(errors: list[WorkflowError], node_map: Mapping[str, str]) -> list[MappedError]:
    return [MappedError(_recipe_node(node_map, e.node_id), e.node_id, e.class_type, e.cause) for e in errors]


def map_prompt_errors(body: Mapping[str, Any], node_map: Mapping[str, str], instance: str | None = None) -> list[MappedError]:
    """A ``POST /prompt`` answer (``{"error", "node_errors"}``) as mapped problems, every node listed."""
    check = PromptCheck(body.get("error") if isinstance(body.get("error"), Mapping) else None,
                        dict(body.get("node_errors") or {}), [])
    if check.error is None and not check.node_errors and body.get("error"):
        return [MappedError(None, None, None, str(body["error"]))]
    return map_workflow_errors(check.errors(instance), node_map)


def map_execution_error(data: Mapping[str, Any], node_map: Mapping[str, str]) -> MappedError:
    """An ``execution_error`` payload as one mapped problem."""
    node = data.get("node_id")
    node = str(node) if node is not None else None
    kind = str(data.get("exception_type") or "error").rsplit(".", 1)[-1]
    message = str(data.get("exception_message") or "").strip() or "no message"
    if "out of memory" in message.lower() or kind == "OutOfMemoryError":
        cause = f"ran out of GPU memory ({message.splitlines()[0]})"
    elif kind == "ExecutionBlocked":
        cause = f"execution was blocked: {message}"
    else:
        cause = f"failed with {kind}: {message.splitlines()[0] if message else ''}"
    return MappedError(_recipe_node(node_map, node), node, data.get("node_type"), cause)


def summary(errors: list[MappedError], limit: int = 6) -> str:
    text = "; ".join(str(e) for e in errors[:limit])
    return text + (f"; and {len(errors) - limit} more" if len(errors) > limit else "")
