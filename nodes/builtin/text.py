"""Text and JSON plumbing: templating, splitting into lists (fan-out), joining (aggregation), picking."""

from __future__ import annotations

import re
from typing import Any

from ..types import NodeContext, NodeFailure, Port, node_type

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@node_type(
    "text.template",
    category="text",
    inputs=[
        Port("template", "string", description="text with {name} placeholders; {{ and }} are literal braces"),
        Port("text", "string", optional=True, description="fills {text}"),
        Port("values", "json", optional=True, description="object whose keys fill {key}"),
    ],
    outputs=[Port("text", "string")],
)
def text_template(ctx: NodeContext, template: str, text: str | None, values: Any) -> dict[str, Any]:
    """Fill {placeholders} in a template. Only plain names are substituted; no expressions run."""
    if values is not None and not isinstance(values, dict):
        raise NodeFailure(f"input 'values' must be a JSON object, got {type(values).__name__}")
    mapping = {str(k): v for k, v in (values or {}).items()}
    if text is not None:
        mapping["text"] = text

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in mapping:
            raise NodeFailure(f"template uses {{{name}}} but no value for it was given")
        value = mapping[name]
        return value if isinstance(value, str) else str(value)

    escaped = template.replace("{{", "\0").replace("}}", "\1")
    return {"text": _PLACEHOLDER.sub(fill, escaped).replace("\0", "{").replace("\1", "}")}


@node_type(
    "text.split",
    category="text",
    inputs=[
        Port("text", "string"),
        Port("separator", "string", optional=True, default="\n", description="split on this; blank items are dropped"),
    ],
    outputs=[Port("items", "string", is_list=True, description="one element per item: downstream nodes fan out")],
)
def text_split(ctx: NodeContext, text: str, separator: str) -> dict[str, Any]:
    """Split text into a list of trimmed, non-empty items."""
    if separator == "":
        raise NodeFailure("input 'separator' must not be empty")
    return {"items": [item.strip() for item in text.split(separator) if item.strip()]}


@node_type(
    "text.join",
    category="text",
    inputs=[Port("items", "string", is_list=True), Port("separator", "string", optional=True, default="\n")],
    outputs=[Port("text", "string")],
)
def text_join(ctx: NodeContext, items: list[str], separator: str) -> dict[str, Any]:
    """Join a list of strings into one text."""
    return {"text": separator.join(items)}


@node_type(
    "json.pick",
    category="data",
    inputs=[
        Port("value", "json"),
        Port("path", "string", description="dot-separated keys and list indexes, e.g. scenes.0.text"),
    ],
    outputs=[Port("value", "json")],
)
def json_pick(ctx: NodeContext, value: Any, path: str) -> dict[str, Any]:
    """Pick one field out of a JSON value."""
    current = value
    walked: list[str] = []
    for part in [p for p in path.split(".") if p]:
        walked.append(part)
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            raise NodeFailure(f"path {'.'.join(walked)!r} does not exist in the value")
    return {"value": current}


@node_type(
    "json.items",
    category="data",
    inputs=[Port("value", "json", description="a JSON array")],
    outputs=[Port("items", "json", is_list=True)],
)
def json_items(ctx: NodeContext, value: Any) -> dict[str, Any]:
    """Turn a JSON array into a list whose elements fan out downstream."""
    if not isinstance(value, list):
        raise NodeFailure(f"input 'value' must be a JSON array, got {type(value).__name__}")
    return {"items": value}


@node_type(
    "number.sum",
    category="data",
    inputs=[Port("values", "number", is_list=True)],
    outputs=[Port("sum", "number")],
)
def number_sum(ctx: NodeContext, values: list[float]) -> dict[str, Any]:
    """Add up a list of numbers (e.g. scene durations into a total)."""
    return {"sum": float(sum(values))}
