"""Request and response bodies of the API (they make the published OpenAPI document)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_DEPTH = 64
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def _check_json(value: Any, depth: int = 0) -> None:
    """JSON has no NaN/Infinity (Python's parser accepts them) and our documents are never deep."""
    if depth > MAX_DEPTH:
        raise ValueError(f"the document is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON numbers")
    if isinstance(value, dict):
        for item in value.values():
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _plain_json(self) -> _Body:
        _check_json(self.model_dump())
        return self


class RecipeSource(_Body):
    recipe: dict[str, Any] | None = Field(
        None, description="A recipe document (JSON Schema: GET /v1/schema/recipe). Give this or `template`."
    )
    template: str | None = Field(None, min_length=1, max_length=100, description="Name of a bundled template (GET /v1/templates)")
    params: dict[str, Any] = Field(default_factory=dict, description="Values of the recipe's parameters")


class PlanRequest(RecipeSource):
    outputs: list[str] | None = Field(None, description="Only what these named outputs need (default: all)")
    force: list[str] = Field(default_factory=list, description="Node ids to execute even when cached")


class RunRequest(PlanRequest):
    priority: int = Field(0, ge=-1_000_000, le=1_000_000,
                          description="ComfyUI priority of this run's prompts: higher goes first, in the pool and "
                                      "in ComfyUI's own queue (default 0)")
    webhook_url: str | None = Field(None, max_length=2048, description="POSTed a signed summary when the run finishes")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Echoed back in the run and its webhook")


class NodePatch(_Body):
    inputs: dict[str, Any] | None = Field(
        None, description="Input values to set on the node, in the recipe's spelling (literal, {link}, {param}, {literal})"
    )
    regenerate: bool = Field(False, description="New result for a non-deterministic node (bumps its nonce)")


class Links(BaseModel):
    self: str
    events: str | None = None


class RunAccepted(BaseModel):
    id: str
    status: RunStatus
    deduplicated: bool = Field(description="An identical submission was already in flight; this is that run")
    replayed: bool = Field(description="The Idempotency-Key was seen before; this is the run it created")
    parent_run: str | None = None
    links: Links


class RunSummary(BaseModel):
    id: str
    status: RunStatus
    recipe_name: str
    template: str | None
    parent_run: str | None
    metadata: dict[str, Any]
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    links: Links


class RunList(BaseModel):
    runs: list[RunSummary]


class ElementState(BaseModel):
    element: int | None
    status: str
    seconds: float
    error: dict[str, Any] | None
    attempt: int | None
    cost: float | None = Field(description="USD this run paid for it (0 when reused from the cache); null: unknown")
    saved: float | None = Field(description="Reused from the cache: what it cost when it was made")


class NodeState(BaseModel):
    node: str
    type: str | None
    status: str = Field(description="pending | running | executed | cached | failed | skipped | not_run")
    seconds: float
    cost: float | None = Field(description="USD this run paid for the node's executions; null: unknown")
    saved: float | None = Field(description="What the executions reused from the cache cost when they were made")
    elements: list[ElementState] = Field(description="Per list element, for a node that fanned out")
    error: dict[str, Any] | None


class WebhookState(BaseModel):
    url: str
    state: str = Field(description="waiting | pending | delivered | failed")
    attempts: int
    last_error: str | None


class RunView(BaseModel):
    id: str
    status: RunStatus
    recipe_name: str
    template: str | None
    params: dict[str, Any]
    outputs_requested: list[str] | None
    force: list[str]
    priority: int = 0
    parent_run: str | None
    attempts: int
    metadata: dict[str, Any]
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    seconds: float | None
    counts: dict[str, int]
    cache_hit_ratio: float | None
    cost: float = Field(description="USD paid so far: providers' reported usage, else estimates (see cost_note)")
    cost_saved: float = Field(description="USD the executions reused from the cache cost when they were made")
    cost_unpriced: int = Field(description="Executions whose cost is unknown (no price configured, or no estimate)")
    cost_note: str
    errors: list[dict[str, Any]]
    outputs: dict[str, Any] | None = Field(description="Named outputs; files as {$artifact, size, ext, url}")
    webhook: WebhookState | None
    links: Links
    nodes: list[NodeState]


class CancelAccepted(BaseModel):
    id: str
    status: str = Field(description="cancelled (it was queued) | cancelling (running nodes are told to stop)")


class PlanStep(BaseModel):
    node: str
    type: str
    element: int | None
    status: str = Field(description="cached | run | waits")
    reason: str
    cache_key: str | None
    estimated_cost: float | None = Field(
        description="USD: what this execution will cost (0 when cached; per execution when it waits); null: unknown")
    saved: float | None = Field(description="Cached: what the result cost when it was made")


class PlanView(BaseModel):
    steps: list[PlanStep]
    counts: dict[str, int]
    cost: float = Field(description="Estimated USD of the steps that will run")
    cost_saved: float = Field(description="USD the cached steps cost when they were made")
    cost_unpriced: int = Field(description="Steps whose cost is unknown, or waits on how many executions there will be")
    cost_note: str


class ValidateView(BaseModel):
    valid: bool
    nodes: int | None = None
    outputs: list[str] = []
    errors: list[dict[str, Any]] = []


class TemplateInfo(BaseModel):
    name: str
    description: str
    params_schema: dict[str, Any]


class TemplateList(BaseModel):
    templates: list[TemplateInfo]


class TemplateView(TemplateInfo):
    params: dict[str, Any] = Field(description="The template's parameter declarations as written")
    outputs: list[str]
    nodes: int
    recipe: dict[str, Any]


class Health(BaseModel):
    status: str
    queue_depth: int | None = None
