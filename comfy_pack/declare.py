"""How a reelgraph node type looks as a ComfyUI node: class name, sockets, widgets, object_info.

Pure data, no ComfyUI and no node implementations: the pack builds its classes from these
declarations at ComfyUI's start (from ``manifest.json``), and the UI-format converter reads the
same schemas to map ``widgets_values`` to input names.

Every reelgraph input is one ComfyUI input that is both a socket and a widget (``widgetType``,
as ComfyUI's own multi-type inputs do), so a literal and a link are always possible and each
input fills exactly one slot of ``widgets_values``:

* string / integer / number / boolean: STRING / INT / FLOAT / BOOLEAN widgets; the socket also
  takes ``REELGRAPH_JSON`` (a json value may feed a typed input, checked when the node runs);
* json, and every list input: a STRING widget holding JSON text;
* image / video / audio / file: ``REELGRAPH_<TYPE>`` sockets with a STRING widget for a file path.

Recipe parameters and outputs become two small families of pack nodes (``recipe_param.<type>``
and ``recipe_output``) so that a recipe opened in ComfyUI keeps them and gives them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

CLASS_PREFIX = "reelgraph."
CATEGORY_ROOT = "reelgraph"
PYTHON_MODULE = "custom_nodes.reelgraph"
JSON_SOCKET = "REELGRAPH_JSON"
FILE_SOCKETS = {
    "image": "REELGRAPH_IMAGE",
    "video": "REELGRAPH_VIDEO",
    "audio": "REELGRAPH_AUDIO",
    "file": "REELGRAPH_FILE",
}
# What a node's output of each type is in ComfyUI.
OUTPUT_SOCKETS = {"string": "STRING", "integer": "INT", "number": "FLOAT", "boolean": "BOOLEAN", "json": JSON_SOCKET,
                  **FILE_SOCKETS}
# What an input of each type accepts (the reelgraph rules: json feeds scalars; integer feeds number;
# any file feeds a file input).
INPUT_SOCKETS = {
    "string": f"STRING,{JSON_SOCKET}",
    "integer": f"INT,{JSON_SOCKET}",
    "number": f"FLOAT,INT,{JSON_SOCKET}",
    "boolean": f"BOOLEAN,{JSON_SOCKET}",
    "json": f"{JSON_SOCKET},STRING,INT,FLOAT,BOOLEAN",
    **FILE_SOCKETS,
    "file": ",".join(FILE_SOCKETS[t] for t in ("file", "image", "video", "audio")),
}
SCALAR_WIDGETS = {"string": "STRING", "integer": "INT", "number": "FLOAT", "boolean": "BOOLEAN"}
INT_LIMIT = 2**63 - 1
MULTILINE_NAMES = frozenset({"text", "script", "template", "prompt", "description", "style", "topic"})

PARAM_NODE = "recipe_param"  # + ".<type>"
OUTPUT_NODE = "recipe_output"
PARAM_DESCRIPTION = "A recipe parameter: its title is the parameter's name; edit its value here."
OUTPUT_DESCRIPTION = "A recipe output: its title is the output's name; shows the value it receives."


def class_name(type_id: str) -> str:
    return CLASS_PREFIX + type_id


def type_id_of(class_type: str) -> str | None:
    """The reelgraph node type id behind a pack class name, or None for any other class."""
    return class_type[len(CLASS_PREFIX):] if class_type.startswith(CLASS_PREFIX) else None


def param_class(value_type: str) -> str:
    return class_name(f"{PARAM_NODE}.{value_type}")


def param_type_of(class_type: str) -> str | None:
    type_id = type_id_of(class_type)
    if type_id and type_id.startswith(PARAM_NODE + "."):
        return type_id[len(PARAM_NODE) + 1:]
    return None


OUTPUT_CLASS = class_name(OUTPUT_NODE)


# ---------------------------------------------------------------------------------------------
# Declarations: the JSON-able description of a node type (what manifest.json holds)


def declare(node_type: Any) -> dict[str, Any]:
    """A registry NodeType as a declaration (plain JSON)."""

    def port(p: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": p.name, "type": p.type}
        if p.is_list:
            entry["is_list"] = True
        if p.optional:
            entry["optional"] = True
        if p.default is not None:
            entry["default"] = p.default
        if p.description:
            entry["description"] = p.description
        return entry

    return {
        "id": node_type.id,
        "category": node_type.category or node_type.id.split(".")[0],
        "description": node_type.description,
        "deterministic": node_type.deterministic,
        "placement": node_type.placement,
        "inputs": [port(p) for p in node_type.inputs],
        "outputs": [port(p) for p in node_type.outputs],
    }


def declare_all(node_types: Iterable[Any]) -> list[dict[str, Any]]:
    return sorted((declare(t) for t in node_types), key=lambda d: d["id"])


def is_text_widget(port: Mapping[str, Any]) -> bool:
    """Inputs whose widget holds JSON text: json values and every list."""
    return port["type"] == "json" or bool(port.get("is_list"))


def widget_default(port: Mapping[str, Any]) -> Any:
    """The widget value that stands for the port's default."""
    default = port.get("default")
    if is_text_widget(port):
        return "" if default is None else json.dumps(default, ensure_ascii=False)
    if port["type"] in FILE_SOCKETS:
        return "" if default is None else str(default)
    if default is not None:
        return default
    return {"string": "", "integer": 0, "number": 0.0, "boolean": False}[port["type"]]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # an empty json/list/file widget: the input is not set


def widget_value(port: Mapping[str, Any], value: Any) -> Any:
    """A literal input value as its widget shows it (JSON text for json and list inputs)."""
    if is_text_widget(port):
        return json.dumps(value, ensure_ascii=False)
    if port["type"] in FILE_SOCKETS:
        return "" if value is None else str(value)
    return value


def input_value(port: Mapping[str, Any], widget: Any) -> Any:
    """A widget value as the literal the port takes, or UNSET for an empty json/list/file widget;
    raises ValueError for bad JSON text."""
    if is_text_widget(port):
        if isinstance(widget, str):
            return UNSET if widget.strip() == "" else json.loads(widget)
        return widget  # an API-format literal that is already a value
    if port["type"] in FILE_SOCKETS and widget in ("", None):
        return UNSET
    return widget


def input_spec(port: Mapping[str, Any]) -> list[Any]:
    """One ``INPUT_TYPES`` entry: ``[socket type, options]``."""
    value_type = port["type"]
    options: dict[str, Any] = {"default": widget_default(port)}
    if is_text_widget(port) or value_type in FILE_SOCKETS:
        options["widgetType"] = "STRING"
        options["multiline"] = is_text_widget(port)
    else:
        options["widgetType"] = SCALAR_WIDGETS[value_type]
        if value_type == "integer":
            options.update(min=-INT_LIMIT, max=INT_LIMIT, step=1, control_after_generate=False)
        elif value_type == "number":
            options.update(min=-1e300, max=1e300, step=0.01, round=False)
        elif value_type == "string":
            options["multiline"] = port["name"] in MULTILINE_NAMES
    description = port.get("description") or ""
    label = f"list of {value_type}" if port.get("is_list") else value_type
    options["tooltip"] = f"{description} ({label})" if description else label
    return [INPUT_SOCKETS[value_type], options]


def input_types(declaration: Mapping[str, Any]) -> dict[str, Any]:
    """The ``INPUT_TYPES()`` of the node's ComfyUI class (required first, then optional)."""
    required = {p["name"]: input_spec(p) for p in declaration["inputs"] if not p.get("optional")}
    optional = {p["name"]: input_spec(p) for p in declaration["inputs"] if p.get("optional")}
    types: dict[str, Any] = {"required": required}
    if optional:
        types["optional"] = optional
    types["hidden"] = {"unique_id": "UNIQUE_ID"}
    return types


def ordered_inputs(declaration: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Inputs in ComfyUI's order (required, then optional): the order of ``widgets_values``."""
    ports = declaration["inputs"]
    return [p for p in ports if not p.get("optional")] + [p for p in ports if p.get("optional")]


# ---------------------------------------------------------------------------------------------
# The recipe's own nodes: parameters and outputs


def param_declaration(value_type: str) -> dict[str, Any]:
    return {
        "id": f"{PARAM_NODE}.{value_type}",
        "category": "recipe",
        "description": PARAM_DESCRIPTION,
        "deterministic": True,
        "placement": "local",
        "inputs": [
            {"name": "value", "type": value_type, "description": "the parameter's default value"},
            {"name": "description", "type": "string", "optional": True, "default": "",
             "description": "what the parameter means"},
            {"name": "constraints", "type": "json", "optional": True,
             "description": 'JSON: {"minimum", "maximum", "choices", "required"} (empty: none)'},
        ],
        "outputs": [{"name": "value", "type": value_type}],
    }


def output_declaration() -> dict[str, Any]:
    return {
        "id": OUTPUT_NODE,
        "category": "recipe",
        "description": OUTPUT_DESCRIPTION,
        "deterministic": True,
        "placement": "local",
        "inputs": [],
        "outputs": [],
    }


RESULT_NODE = "comfy_result"  # see expansion.py


def result_declaration() -> dict[str, Any]:
    """The node that ends a pack node's expansion into stock nodes (never placed by hand)."""
    return {
        "id": RESULT_NODE,
        "category": "internal",
        "description": "Ends a reelgraph node that runs as stock ComfyUI nodes: turns what they made into "
                       "that node's output. Added by reelgraph when it expands a node; not for the canvas.",
        "deterministic": True,
        "placement": "local",
        "inputs": [
            {"name": "fps", "type": "number", "description": "frame rate of the frames"},
            {"name": "contract", "type": "string", "description": "JSON: the node's output contract"},
            {"name": "provenance", "type": "string", "description": "JSON: where it ran"},
        ],
        "outputs": [{"name": "value", "type": "file"},
                    {"name": "placement", "type": "json", "description": "where it ran"}],
    }


RECIPE_NODE_DECLARATIONS = [param_declaration(t) for t in OUTPUT_SOCKETS] + [output_declaration(),
                                                                              result_declaration()]


def class_inputs(declaration: Mapping[str, Any]) -> dict[str, Any]:
    if declaration["id"] == OUTPUT_NODE:
        return {"required": {"value": ["*", {"tooltip": "the value this recipe output gives"}]},
                "hidden": {"unique_id": "UNIQUE_ID"}}
    types = input_types(declaration)
    if declaration["id"] == RESULT_NODE:  # takes IMAGE frames or a VIDEO
        types["required"] = {"media": ["*", {"tooltip": "what the save node would have saved"}], **types["required"]}
    return types


def display_name(declaration: Mapping[str, Any]) -> str:
    type_id = declaration["id"]
    if type_id == OUTPUT_NODE:
        return "Recipe output (reelgraph)"
    if type_id == RESULT_NODE:
        return "ComfyUI result (reelgraph, internal)"
    if type_id.startswith(PARAM_NODE + "."):
        return f"Recipe parameter: {type_id.split('.', 1)[1]} (reelgraph)"
    return f"{type_id} (reelgraph)"


def object_info_entry(declaration: Mapping[str, Any]) -> dict[str, Any]:
    """What ComfyUI's ``/object_info`` shows for the pack class (its ``node_info`` for V1 classes)."""
    inputs = class_inputs(declaration)
    outputs = declaration["outputs"]
    return {
        "input": json.loads(json.dumps(inputs)),
        "input_order": {section: list(entries) for section, entries in inputs.items()},
        "is_input_list": any(p.get("is_list") for p in declaration["inputs"]),
        "output": [OUTPUT_SOCKETS[p["type"]] for p in outputs],
        "output_is_list": [bool(p.get("is_list")) for p in outputs],
        "output_name": [p["name"] for p in outputs],
        "output_tooltips": [p.get("description", "") for p in outputs],
        "name": class_name(declaration["id"]),
        "display_name": display_name(declaration),
        "description": declaration.get("description", ""),
        "python_module": PYTHON_MODULE,
        "category": f"{CATEGORY_ROOT}/{declaration['category']}",
        "output_node": declaration["id"] == OUTPUT_NODE,
    }


def object_info(declarations: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``/object_info`` entries of the whole pack: the node types plus the recipe nodes."""
    every = [*declarations, *RECIPE_NODE_DECLARATIONS]
    return {class_name(d["id"]): object_info_entry(d) for d in every}
