"""Recipe validation: parse, check against the node registry, bind params. Reports every error at once."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import ValidationError

from ..nodes.registry import NodeRegistry, is_comfy_type
from ..nodes.types import FILE_TYPES, NodeType, Port, type_label, value_matches
from .errors import GraphError, RecipeInvalid, json_path
from .model import Link, LiteralObject, NodeSpec, ParamRef, ParamSpec, Recipe


@dataclass(frozen=True)
class BoundNode:
    """A node ready for the engine: params substituted, literals unwrapped, links kept."""

    id: str
    spec: NodeSpec
    node_type: NodeType | None  # None for comfy:<class_type> nodes
    inputs: Mapping[str, Any]  # name -> Link or plain literal value


@dataclass(frozen=True)
class BoundRecipe:
    recipe: Recipe
    params: Mapping[str, Any]
    nodes: Mapping[str, BoundNode]
    graph: nx.DiGraph  # edge upstream -> downstream
    base_dir: Path
    outputs: Mapping[str, Link]  # recipe outputs, slot numbers turned into names  # relative file paths in literals resolve against this


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_recipe(source: str | bytes | Mapping[str, Any]) -> Recipe:
    """JSON text or a decoded document -> Recipe, or RecipeInvalid listing every structural error."""
    if isinstance(source, (str, bytes)):
        try:
            document = json.loads(source, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise RecipeInvalid([GraphError("bad_json", "", f"not valid JSON: {exc}")]) from None
    else:
        document = source
    if not isinstance(document, Mapping):
        raise RecipeInvalid([GraphError("bad_structure", "", "a recipe must be a JSON object")])
    try:
        return Recipe.model_validate(document)
    except ValidationError as exc:
        raise RecipeInvalid([_from_pydantic(error) for error in exc.errors()]) from None
    except RecursionError:
        raise RecipeInvalid([GraphError("bad_structure", "", "the document is nested too deeply")]) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a recipe")


def _from_pydantic(error: Mapping[str, Any]) -> GraphError:
    loc = [part for part in error["loc"] if not _is_pydantic_tag(part)]
    node = str(loc[1]) if len(loc) >= 2 and loc[0] == "nodes" else None
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = f"required field {loc[-1]!r} is missing" if loc else "required field missing"
    elif error["type"] == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}"
    return GraphError("bad_structure", json_path(*loc), message, node)


def _is_pydantic_tag(part: Any) -> bool:
    # pydantic inserts union-member and validator names into locations; they are not JSON path parts
    return isinstance(part, str) and (part.startswith("function-") or part in {"[key]", "tagged-union"})


def bind_recipe(
    recipe: Recipe,
    registry: NodeRegistry,
    params: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> BoundRecipe:
    """Check the recipe against the registry and bind param values; RecipeInvalid lists every error."""
    errors: list[GraphError] = []
    values = _bind_params(recipe, dict(params or {}), errors)
    base = base_dir or Path.cwd()
    nodes: dict[str, BoundNode] = {}
    graph = nx.DiGraph()
    graph.add_nodes_from(recipe.nodes)
    for node_id, spec in recipe.nodes.items():
        node_type = None if is_comfy_type(spec.type) else registry.get(spec.type)
        if node_type is None and not is_comfy_type(spec.type):
            errors.append(
                GraphError(
                    "unknown_node_type",
                    json_path("nodes", node_id, "type"),
                    f"unknown node type {spec.type!r}{_suggest(spec.type, registry.ids())}",
                    node_id,
                )
            )
        inputs = _bind_inputs(recipe, node_id, spec, node_type, registry, values, base, errors)
        for value in inputs.values():
            if isinstance(value, Link) and value.node in recipe.nodes:
                graph.add_edge(value.node, node_id)
        nodes[node_id] = BoundNode(node_id, spec, node_type, inputs)
    outputs = {
        name: _check_link(recipe, registry, ref, json_path("outputs", name), None, None, errors)
        for name, ref in recipe.outputs.items()
    }
    errors.extend(_cycle_errors(graph))
    if errors:
        raise RecipeInvalid(errors)
    return BoundRecipe(recipe, values, nodes, graph, base, outputs)


def _bind_params(recipe: Recipe, given: dict[str, Any], errors: list[GraphError]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in given:
        if name not in recipe.params:
            errors.append(
                GraphError(
                    "unknown_param",
                    json_path("params", name),
                    f"the recipe has no parameter {name!r}{_suggest(name, list(recipe.params))}",
                )
            )
    for name, spec in recipe.params.items():
        if not spec.required:
            problem = param_value_problem(spec, spec.default)
            if problem:
                errors.append(GraphError("bad_param_value", json_path("params", name, "default"), problem))
        if name in given:
            value = given[name]
            problem = param_value_problem(spec, value)
            if problem:
                errors.append(GraphError("bad_param_value", json_path("params", name), f"value {value!r}: {problem}"))
                continue
            values[name] = value
        elif spec.required:
            errors.append(GraphError("missing_param", json_path("params", name), f"parameter {name!r} is required"))
        else:
            values[name] = spec.default
    return values


def param_value_problem(spec: ParamSpec, value: Any) -> str | None:
    if not value_matches(value, spec.type):
        return f"expected {spec.type}, got {type(value).__name__}"
    if spec.choices is not None and value not in spec.choices:
        return f"must be one of {spec.choices}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            return f"must be at least {spec.minimum:g}"
        if spec.maximum is not None and value > spec.maximum:
            return f"must be at most {spec.maximum:g}"
    return None


def _bind_inputs(
    recipe: Recipe,
    node_id: str,
    spec: NodeSpec,
    node_type: NodeType | None,
    registry: NodeRegistry,
    params: Mapping[str, Any],
    base_dir: Path,
    errors: list[GraphError],
) -> dict[str, Any]:
    bound: dict[str, Any] = {}
    for name, value in spec.inputs.items():
        path = json_path("nodes", node_id, "inputs", name)
        port = node_type.input(name) if node_type else None
        if node_type is not None and port is None:
            known = [p.name for p in node_type.inputs]
            errors.append(
                GraphError(
                    "unknown_input",
                    path,
                    f"node type {node_type.id!r} has no input {name!r}{_suggest(name, known)}"
                    f" (inputs: {', '.join(known) or 'none'})",
                    node_id,
                )
            )
            continue
        if isinstance(value, Link):
            bound[name] = _check_link(recipe, registry, value, path, node_id, port, errors)
            continue
        if isinstance(value, ParamRef):
            if value.param not in recipe.params:
                errors.append(
                    GraphError(
                        "unknown_param",
                        path,
                        f"refers to parameter {value.param!r}, which the recipe does not declare"
                        f"{_suggest(value.param, list(recipe.params))}",
                        node_id,
                    )
                )
                continue
            if port is not None and not _param_fits(recipe.params[value.param], port):
                errors.append(
                    GraphError(
                        "wrong_type",
                        path,
                        f"parameter {value.param!r} is {recipe.params[value.param].type}"
                        f" but input {name!r} takes {type_label(port)}",
                        node_id,
                    )
                )
                continue
            if value.param not in params:
                continue  # missing or bad param value already reported
            literal = params[value.param]
        else:
            literal = value.literal if isinstance(value, LiteralObject) else value
        if port is not None:
            problem = literal_problem(literal, port, base_dir)
            if problem:
                kind = "missing_file" if problem.startswith("file") else "wrong_type"
                errors.append(GraphError(kind, path, problem, node_id))
                continue
        bound[name] = literal
    if node_type is not None:
        for port in node_type.inputs:
            if port.name not in spec.inputs and not port.optional:
                errors.append(
                    GraphError(
                        "missing_input",
                        json_path("nodes", node_id, "inputs", port.name),
                        f"required input {port.name!r} ({type_label(port)}) is not set",
                        node_id,
                    )
                )
    return bound


def _param_fits(param: ParamSpec, port: Port) -> bool:
    if port.is_list:
        return param.type == "json"
    return _types_compatible(param.type, port.type)


def _types_compatible(source: str, target: str) -> bool:
    """Whether a value of type ``source`` may flow into an input of type ``target``.

    A ``json`` value may feed a scalar input (e.g. a field picked out of a script); its actual
    type is checked when the node runs, like ComfyUI's ``*`` outputs."""
    if source == target:
        return True
    if source not in FILE_TYPES and (target == "json" or source == "json" and target not in FILE_TYPES):
        return True
    if target == "number" and source == "integer":
        return True
    return target == "file" and source in FILE_TYPES


def literal_problem(value: Any, port: Port, base_dir: Path) -> str | None:
    """Why a literal does not fit a port, or None."""
    if port.is_list:
        if not isinstance(value, list):
            return f"expected a list of {port.type}, got {type(value).__name__}"
        for index, item in enumerate(value):
            problem = _scalar_problem(item, port, base_dir)
            if problem:
                return f"item {index}: {problem}"
        return None
    return _scalar_problem(value, port, base_dir)


def _scalar_problem(value: Any, port: Port, base_dir: Path) -> str | None:
    if value is None and port.optional:
        return None
    if not value_matches(value, port.type):
        return f"expected {port.type}, got {type(value).__name__} {_short(value)}"
    if port.type in FILE_TYPES and not (base_dir / str(value)).is_file():
        return f"file {str(value)!r} does not exist (relative paths resolve against {base_dir})"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_link(
    recipe: Recipe,
    registry: NodeRegistry,
    link: Link,
    path: str,
    node_id: str | None,
    port: Port | None,
    errors: list[GraphError],
) -> Link:
    """Report what is wrong with a link; return it with a slot number turned into the output's name."""
    target = recipe.nodes.get(link.node)
    if target is None:
        errors.append(
            GraphError(
                "missing_node",
                path,
                f"links to node {link.node!r}, which is not in the recipe{_suggest(link.node, list(recipe.nodes))}",
                node_id,
            )
        )
        return link
    if is_comfy_type(target.type):
        if not isinstance(link.output, int):
            errors.append(
                GraphError(
                    "missing_output",
                    path,
                    f"node {link.node!r} is a ComfyUI node; link to its outputs by slot number, not {link.output!r}",
                    node_id,
                )
            )
        return link
    source_type = registry.get(target.type)
    if source_type is None:
        return link  # unknown type already reported
    names = [p.name for p in source_type.outputs]
    source_port = (
        source_type.outputs[link.output]
        if isinstance(link.output, int) and link.output < len(names)
        else source_type.output(link.output) if isinstance(link.output, str) else None
    )
    if source_port is None:
        errors.append(
            GraphError(
                "missing_output",
                path,
                f"node {link.node!r} ({target.type}) has no output {link.output!r}"
                f"{_suggest(str(link.output), names)} (outputs: {', '.join(names) or 'none'})",
                node_id,
            )
        )
        return link
    if port is not None and not _types_compatible(source_port.type, port.type):
        errors.append(
            GraphError(
                "wrong_type",
                path,
                f"output {link.node}.{source_port.name} is {type_label(source_port)}"
                f" but input {port.name!r} takes {type_label(port)}",
                node_id,
            )
        )
    return Link(link=(link.node, source_port.name))


def _cycle_errors(graph: nx.DiGraph) -> list[GraphError]:
    errors = []
    for component in nx.strongly_connected_components(graph):
        first = min(component)
        if len(component) == 1 and not graph.has_edge(first, first):
            continue
        cycle = [edge[0] for edge in nx.find_cycle(graph.subgraph(component), source=first)]
        names = " -> ".join([*cycle, cycle[0]])
        errors.append(GraphError("cycle", json_path("nodes", first), f"dependency cycle: {names}", first))
    return errors


def load_and_bind(
    path: Path, registry: NodeRegistry, params: Mapping[str, Any] | None = None
) -> BoundRecipe:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise RecipeInvalid([GraphError("bad_json", "", f"cannot read {path}: {exc.strerror}")]) from None
    recipe = parse_recipe(text)
    return bind_recipe(recipe, registry, params, base_dir=path.parent.resolve())
