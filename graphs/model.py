"""The recipe document: pydantic models and the one spelling of an input.

An input value is one of:
  * a JSON scalar or array: a literal;
  * ``{"link": [node_id, output]}``: a named output of another node (a slot number for nodes
    imported from ComfyUI, whose outputs are positional);
  * ``{"param": name}``: a template parameter;
  * ``{"literal": value}``: a literal object (objects are otherwise reserved for the two forms above).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..nodes.types import ValueType

RECIPE_SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Link(_Strict):
    link: tuple[Annotated[str, Field(min_length=1)], str | Annotated[int, Field(ge=0)]]

    @property
    def node(self) -> str:
        return self.link[0]

    @property
    def output(self) -> str | int:
        return self.link[1]


class ParamRef(_Strict):
    param: Annotated[str, Field(min_length=1)]


class LiteralObject(_Strict):
    literal: Any


_OBJECT_FORMS = '{"link": [node, output]}, {"param": name} or {"literal": value}'


def _parse_input(value: Any) -> Any:
    if isinstance(value, (Link, ParamRef, LiteralObject)):
        return value
    if not isinstance(value, dict):
        return value
    keys = set(value)
    if keys == {"link"}:
        return Link.model_validate(value)
    if keys == {"param"}:
        return ParamRef.model_validate(value)
    if keys == {"literal"}:
        return LiteralObject.model_validate(value)
    raise ValueError(f"an object input must be exactly one of {_OBJECT_FORMS}; got keys {sorted(keys)}")


_LINK_SCHEMA = {
    "type": "object",
    "properties": {
        "link": {
            "type": "array",
            "prefixItems": [{"type": "string", "minLength": 1}, {"type": ["string", "integer"]}],
            "minItems": 2,
            "maxItems": 2,
            "description": "[node id, output name] (or output slot number for ComfyUI nodes)",
        }
    },
    "required": ["link"],
    "additionalProperties": False,
}
_INPUT_SCHEMA = {
    "anyOf": [
        {"type": ["string", "number", "integer", "boolean", "null", "array"], "description": "literal"},
        _LINK_SCHEMA,
        {
            "type": "object",
            "properties": {"param": {"type": "string", "minLength": 1}},
            "required": ["param"],
            "additionalProperties": False,
        },
        {"type": "object", "properties": {"literal": {}}, "required": ["literal"], "additionalProperties": False},
    ]
}

InputValue = Annotated[Any, BeforeValidator(_parse_input), WithJsonSchema(_INPUT_SCHEMA)]
OutputRef = Annotated[Link, WithJsonSchema(_LINK_SCHEMA)]


class ParamSpec(_Strict):
    type: ValueType
    default: Any = Field(default=None, description="omit to make the parameter required")
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: list[Any] | None = None

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set


class NodeSpec(_Strict):
    type: Annotated[str, Field(min_length=1, description="node type id, or comfy:<class_type>")]
    inputs: dict[str, InputValue] = Field(default_factory=dict)
    nonce: Annotated[int, Field(ge=0)] = Field(
        default=0, description="regeneration counter of a non-deterministic node; enters its cache key"
    )
    meta: dict[str, Any] = Field(default_factory=dict, description="free-form; never enters a cache key")


class Recipe(_Strict):
    reelgraph: Annotated[int, Field(ge=1, le=RECIPE_SCHEMA_VERSION)] = RECIPE_SCHEMA_VERSION
    name: str | None = None
    description: str = ""
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    nodes: dict[Annotated[str, Field(min_length=1)], NodeSpec]
    outputs: dict[str, OutputRef] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


def recipe_json_schema() -> dict[str, Any]:
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://reelgraph.dev/schema/recipe-v1.json"
    return schema
