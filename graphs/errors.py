"""Validation errors: every problem in a recipe, each with its node, JSON path and a plain sentence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

ErrorKind = Literal[
    "bad_json",
    "bad_structure",
    "unknown_node_type",
    "unknown_input",
    "missing_input",
    "wrong_type",
    "missing_node",
    "missing_output",
    "cycle",
    "unknown_param",
    "missing_param",
    "bad_param_value",
    "missing_file",
    "bad_option",
]


@dataclass(frozen=True)
class GraphError:
    kind: ErrorKind
    path: str  # dotted JSON path inside the recipe, e.g. "nodes.card.inputs.text"
    message: str
    node: str | None = None

    def __str__(self) -> str:
        where = f"node {self.node!r}, " if self.node is not None else ""
        return f"{where}{self.path or '(recipe)'}: {self.message}"

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)


class RecipeInvalid(Exception):
    """A recipe (or its params) has errors; all of them are in ``errors``."""

    def __init__(self, errors: list[GraphError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


def json_path(*parts: object) -> str:
    return ".".join(str(part) for part in parts)
