"""ComfyUI UI-format ("workflow") documents ↔ recipes.

Import: UI format (schema 0.4 and 1.0) is first turned into API format the way the frontend's
``graphToPrompt`` does it — subgraphs flattened (inner ids ``"<instance>:<inner>"``), reroutes,
legacy primitive nodes and Get/Set nodes resolved, bypassed nodes passed through by type, muted
and UI-only nodes dropped, ``widgets_values`` mapped to input names from ``/object_info``
(``control_after_generate`` values skipped, dynamic combos expanded; a node saved with other
widgets than its schema has now is read from ``widgets_values_named``, as the frontend's named
restore does). The API document then becomes a recipe (``comfy_api.recipe_from_api``), and
nodes of the reelgraph pack become reelgraph nodes, parameters and outputs again
(:func:`adopt_pack_nodes`), also those exported as subgraphs of stock nodes (``comfy_expand``).

Export: a recipe becomes a UI-format workflow (0.4) with a generated layout: columns by
dependency depth, one group per column (stage), no overlaps; optionally with ComfyUI-placed
nodes as subgraphs of the stock nodes they compile to (``comfy_expand``). Recipe facts that a
canvas has no place for (node ids, nonces, meta, which inputs were unset) ride in
``properties.reelgraph`` and in ``extra.reelgraph``, so recipe → UI → recipe gives the same recipe.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..comfy_pack.declare import (
    INPUT_SOCKETS,
    OUTPUT_CLASS,
    OUTPUT_SOCKETS,
    UNSET,
    class_name,
    declare_all,
    input_value,
    is_text_widget,
    object_info,
    ordered_inputs,
    param_class,
    param_declaration,
    param_type_of,
    type_id_of,
    widget_default,
    widget_value,
)
from ..comfy_workflows.schema import InputSpec, NodeSchema, ObjectInfo
from ..nodes.registry import COMFY_TYPE_PREFIX, is_comfy_type
from .comfy_api import recipe_from_api, with_saved_outputs
from .comfy_expand import (
    EXPANDED,
    canonical_digest,
    compiled_workflow,
    definition,
    renumber_subgraphs,
)
from .errors import GraphError, RecipeInvalid
from .model import Link, LiteralObject, NodeSpec, ParamRef, ParamSpec, Recipe

MUTED, BYPASSED = 2, 4
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = "-10", "-20"
UI_ONLY = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode", "GetNode", "SetNode"})
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
# Widget types the frontend (1.58) registers besides the scalar ones; an input of such a type is a
# widget, not a socket. Most fill a slot of widgets_values; the previews below never do, and
# ImageCompare's is sent to the server with an empty value.
FRONTEND_WIDGETS = frozenset({
    "MARKDOWN", "IMAGEUPLOAD", "COLOR", "IMAGECOMPARE", "BOUNDING_BOX", "CHART", "GALLERIA", "PAINTER",
    "COMPOSITOR", "TEXTAREA", "CURVE", "RANGE", "VIDEO_EDIT", "RESOLUTION_PREVIEW", "BOUNDING_BOXES",
    "LIGHT_INFO_PREVIEW", "COLORS", "AUDIO_UI", "AUDIOUPLOAD", "AUDIO_RECORD", "WEBCAM", "PREVIEW_3D", "LOAD_3D",
    "LOAD_3D_ADVANCED", "CAMERA_ANGLE_VIEW", "CAMERA_INFO_STATE", "COMFY_BRANCH_INPUT_NAMES",
})
UNSAVED_WIDGETS = {"IMAGECOMPARE": ["", ""], "CHART": None, "GALLERIA": None, "RESOLUTION_PREVIEW": None,
                   "LIGHT_INFO_PREVIEW": None}
# Values of buttons the frontend adds to upload widgets (Load3D, LoadImage): never inputs.
BUTTON_VALUES = frozenset({"upload3dmodel", "uploadExtraResources", "clear"})
UPLOAD_BUTTON_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
MAX_DEPTH = 64


class WorkflowRefused(ValueError):
    """A workflow uses something the converter does not support; the message names it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# ---------------------------------------------------------------------------------------------
# Schemas: the pack's own nodes beside a saved or live /object_info


def pack_declarations(registry: Any = None) -> list[dict[str, Any]]:
    """Declarations of the reelgraph node types: from a registry, else the pack's manifest."""
    if registry is not None:
        return declare_all(registry.get(type_id) for type_id in registry.ids())
    from ..comfy_pack import load_declarations

    return load_declarations()


def combined_info(document: Mapping[str, Any] | None, declarations: list[dict[str, Any]]) -> ObjectInfo:
    """An ``/object_info`` document (or none) plus the pack's classes."""
    return ObjectInfo({**(document or {}), **object_info(declarations)})


def is_ui_format(document: Any) -> bool:
    return isinstance(document, Mapping) and isinstance(document.get("nodes"), list) and "links" in document


def is_widget(spec: InputSpec) -> bool:
    """Whether an input has a widget, i.e. fills a slot of ``widgets_values`` (frontend rules)."""
    if spec.config.get("forceInput") or spec.config.get("defaultInput"):
        return False
    kind = spec.config.get("widgetType") or spec.type
    return spec.is_combo or kind in WIDGET_TYPES or kind in FRONTEND_WIDGETS or spec.type == DYNAMIC_COMBO


def _saves_value(spec: InputSpec) -> bool:
    return (spec.config.get("widgetType") or spec.type) not in UNSAVED_WIDGETS


def has_control(spec: InputSpec) -> bool:
    """Whether the frontend puts a ``control_after_generate`` value after this widget."""
    kind = spec.config.get("widgetType") or spec.type
    flag = spec.config.get("control_after_generate")
    if flag is not None:
        return bool(flag) and (kind in ("INT", "FLOAT") or spec.is_combo)
    return kind == "INT" and spec.name in ("seed", "noise_seed")


def _dynamic_options(spec: InputSpec, value: Any) -> list[InputSpec]:
    for option in spec.config.get("options") or []:
        if isinstance(option, Mapping) and option.get("key") == value:
            sections = option.get("inputs") or {}
            return [
                _sub_spec(f"{spec.name}.{name}", entry, section == "required")
                for section in ("required", "optional")
                for name, entry in (sections.get(section) or {}).items()
            ]
    return []


def _default(spec: InputSpec) -> Any:
    """A fresh widget's value. A DynamicCombo is a combo of its option keys, so its first key."""
    if spec.type == DYNAMIC_COMBO:
        keys = [o.get("key") for o in spec.config.get("options") or [] if isinstance(o, Mapping)]
        return spec.config.get("default", keys[0] if keys else None)
    return spec.default()


def _sub_spec(name: str, entry: Any, required: bool) -> InputSpec:
    from ..comfy_workflows.schema import parse_input

    return parse_input(name, entry, required)


def map_widgets(values: list[Any], specs: list[InputSpec], depth: int = 0) -> dict[str, Any]:
    """``widgets_values`` (a list) as input name → value, walking the schema's inputs in order."""
    found: dict[str, Any] = {}
    position = 0

    def walk(inputs: list[InputSpec], level: int) -> None:
        nonlocal position
        widgets = [spec for spec in inputs if is_widget(spec) and _saves_value(spec)]
        for index, spec in enumerate(widgets):
            while position < len(values) and isinstance(values[position], str) and values[position] in BUTTON_VALUES:
                position += 1
            if position >= len(values):
                return
            value = values[position]
            position += 1
            found[spec.name] = value
            if (any(spec.config.get(flag) for flag in UPLOAD_BUTTON_FLAGS) and position < len(values)
                    and values[position] == "image" and index + 1 < len(widgets)
                    and "image" not in (widgets[index + 1].options or ())):
                position += 1  # the upload button's value
            if position < len(values) and isinstance(values[position], str) and values[position] in CONTROL_VALUES:
                following = widgets[index + 1] if index + 1 < len(widgets) else None
                takes_text = following is not None and (following.type == "STRING" or following.is_combo and
                                                        values[position] in (following.options or ()))
                if has_control(spec) or (spec.type == "INT" and not takes_text):
                    position += 1
            if spec.type == DYNAMIC_COMBO and level < MAX_DEPTH:
                walk(_dynamic_options(spec, value), level + 1)

    walk(specs, depth)
    return found


def _widget_order(schema: NodeSchema, values: Mapping[str, Any]) -> list[tuple[InputSpec, bool]]:
    """The widgets a node shows, in order, given its values (dynamic combos add their options'),
    each with whether a control_after_generate value follows it."""
    order: list[tuple[InputSpec, bool]] = []

    def walk(inputs: list[InputSpec], level: int) -> None:
        for spec in inputs:
            if not is_widget(spec):
                continue
            order.append((spec, has_control(spec)))
            if spec.type == DYNAMIC_COMBO and level < MAX_DEPTH:
                walk(_dynamic_options(spec, values.get(spec.name, _default(spec))), level + 1)

    walk(list(schema.inputs.values()), 0)
    return order


def _saved_widget_names(named: Mapping[str, Any]) -> set[str]:
    """The input widgets a ``widgets_values_named`` map was saved from: without the frontend's
    control_after_generate and upload-button widgets and renamed duplicates (``audio#1``)."""
    return {str(k) for k in named if not (str(k).startswith("control_after_generate") or "#" in str(k)
                                          or k == "upload" or k in CONTROL_VALUES or k in BUTTON_VALUES)}


def _saved_by_another_version(schema: NodeSchema, named: Mapping[str, Any]) -> bool:
    """Whether a node was saved with other widgets than this schema gives it: then only its named
    values still say which value belongs to which input (``widgets_values`` is positional)."""
    current = {spec.name for spec, _ in _widget_order(schema, named) if _saves_value(spec)}
    return _saved_widget_names(named) != current


def restore_by_name(schema: NodeSchema, named: Mapping[str, Any]) -> dict[str, Any]:
    """Widget values from ``widgets_values_named`` (written by frontends since 1.49 beside the
    positional list), the way the frontend restores them with ``Comfy.Workflow.NamedValuesRestore``:
    each widget the schema gives the node takes the value saved under its name (a DynamicCombo's
    option widgets under ``<combo>.<name>``); saved names the node no longer has are dropped."""
    return {spec.name: named[spec.name] for spec, _ in _widget_order(schema, named) if spec.name in named}


def _wrap(value: Any) -> Any:
    """A widget value as API format sends it: arrays wrapped so they never read as links."""
    return {"__value__": value} if isinstance(value, list) else value


# ---------------------------------------------------------------------------------------------
# UI → API


def _links_table(links: Any) -> dict[str, tuple[str, int, str, int, Any]]:
    table: dict[str, tuple[str, int, str, int, Any]] = {}
    for link in links or []:
        if isinstance(link, Mapping):
            row = (link.get("id"), link.get("origin_id"), link.get("origin_slot"), link.get("target_id"),
                   link.get("target_slot"), link.get("type"))
        elif isinstance(link, (list, tuple)) and len(link) >= 5:
            row = tuple(link[:6]) if len(link) >= 6 else (*link[:5], None)
        else:
            continue
        if row[0] is None or row[1] is None:
            continue
        table[str(row[0])] = (str(row[1]), int(row[2] or 0), str(row[3]), int(row[4] or 0), row[5])
    return table


@dataclass
class _Scope:
    prefix: str
    nodes: dict[str, dict[str, Any]]
    links: dict[str, tuple[str, int, str, int, Any]]
    parent: _Scope | None = None
    instance: dict[str, Any] | None = None
    definition: dict[str, Any] | None = None
    host_inputs: dict[int, Any] = field(default_factory=dict)  # subgraph input index -> promoted value
    host_widgets: dict[tuple[str, str], Any] = field(default_factory=dict)  # (inner node, widget) -> value


def _interior_widget(scope: _Scope, entry: Mapping[str, Any], info: ObjectInfo) -> tuple[str, str] | None:
    """The inner widget a subgraph input is promoted from: the first of its links that ends on a
    widget, as (inner node id, widget name). The frontend gives the instance a widget for such an
    input only (``SubgraphNode._resolveInputWidget``); an input that only feeds sockets, including
    ``forceInput`` ones of a widget type, has none."""
    for link_id in entry.get("linkIds") or []:
        link = scope.links.get(str(link_id))
        target = scope.nodes.get(link[2]) if link else None
        for slot in (target or {}).get("inputs") or []:
            if not isinstance(slot, Mapping) or slot.get("link") != link_id:
                continue
            name = (slot.get("widget") or {}).get("name")
            schema = info.get(str(target.get("type")))
            spec = schema.inputs.get(str(slot.get("name"))) if schema else None
            if name is None and spec is not None and is_widget(spec):
                name = spec.name  # an older file that does not mark the converted widget
            if name is not None:
                return str(link[2]), str(name)
    return None


@dataclass(frozen=True)
class _Source:
    node: str
    slot: int


@dataclass(frozen=True)
class _Const:
    value: Any


def _types_overlap(a: Any, b: Any) -> bool:
    if a in ("*", None, "") or b in ("*", None, ""):
        return True
    return bool({t.strip() for t in str(a).split(",")} & {t.strip() for t in str(b).split(",")})


class _Converter:
    def __init__(self, workflow: Mapping[str, Any], info: ObjectInfo) -> None:
        self.info = info
        self.problems: list[str] = []
        definitions = (workflow.get("definitions") or {}).get("subgraphs") or []
        self.definitions = {d["id"]: d for d in definitions if isinstance(d, Mapping) and isinstance(d.get("id"), str)}
        self.root = self._scope("", workflow, None, None, None)
        self.children: dict[int, _Scope] = {}
        extra = workflow.get("extra") or {}
        if (isinstance(extra, Mapping) and extra.get("groupNodes")) or any(
            str(n.get("type", "")).startswith(("workflow>", "workflow/")) for n in workflow["nodes"] if isinstance(n, Mapping)
        ):
            self.problems.append("legacy group nodes (extra.groupNodes) are not supported: convert them to subgraphs")

    @staticmethod
    def _scope(prefix: str, graph: Mapping[str, Any], parent: _Scope | None, instance: dict[str, Any] | None,
               definition: dict[str, Any] | None) -> _Scope:
        nodes = {str(n.get("id")): n for n in graph.get("nodes") or [] if isinstance(n, dict)}
        return _Scope(prefix, nodes, _links_table(graph.get("links")), parent, instance, definition)

    def child(self, scope: _Scope, instance: dict[str, Any]) -> _Scope | None:
        key = id(instance)
        if key not in self.children:
            definition = self.definitions.get(instance.get("type"))
            depth = scope.prefix.count(":")
            if definition is None or depth >= MAX_DEPTH:
                return None
            child = self._scope(f"{scope.prefix}{instance.get('id')}:", definition, scope, instance, definition)
            self._host_values(child, instance, definition)
            self.children[key] = child
        return self.children[key]

    def _host_values(self, child: _Scope, instance: Mapping[str, Any], definition: Mapping[str, Any]) -> None:
        values = instance.get("widgets_values")
        if not isinstance(values, list) or not values:
            return
        names = [str(i.get("name")) for i in definition.get("inputs") or []]
        proxy = (instance.get("properties") or {}).get("proxyWidgets")
        if isinstance(proxy, list) and proxy:
            # A null value is a promoted widget that saved nothing of its own: the frontend then
            # shows (and runs) the interior widget's value (proxyWidget onConfigure skips nulls).
            for entry, value in zip(proxy, values):
                if not (isinstance(entry, list) and len(entry) == 2) or value is None:
                    continue
                node, widget = str(entry[0]), str(entry[1])
                if node == "-1":
                    if widget in names:
                        child.host_inputs[names.index(widget)] = value
                else:
                    child.host_widgets[(node, widget)] = value
            return
        # Without proxyWidgets the values follow the promoted inputs (those with an inner widget) in
        # order; a longer list also holds a control_after_generate value after each promoted widget
        # that has one (SubgraphNode._applyPromotedWidgetValues).
        promoted = [(index, found) for index, entry in enumerate(definition.get("inputs") or [])
                    if (found := _interior_widget(child, entry, self.info)) is not None]
        with_controls = len(values) > len(promoted)
        position = 0
        for index, (node_id, widget) in promoted:
            if position >= len(values):
                break
            child.host_inputs[index] = values[position]
            position += 1
            if with_controls and self._has_control(child, node_id, widget):
                position += 1

    def _has_control(self, scope: _Scope, node_id: str, widget: str) -> bool:
        schema = self.info.get(str((scope.nodes.get(node_id) or {}).get("type")))
        spec = schema.inputs.get(widget) if schema else None
        return spec is not None and has_control(spec)

    # -- resolution --------------------------------------------------------------------------
    def resolve_link(self, scope: _Scope, link_id: Any, depth: int = 0) -> _Source | _Const | None:
        if link_id is None or depth > 4 * MAX_DEPTH:
            return None
        link = scope.links.get(str(link_id))
        if link is None:
            return None
        origin, slot = link[0], link[1]
        if origin == SUBGRAPH_INPUT:
            return self._from_boundary(scope, slot, depth)
        return self.resolve_output(scope, origin, slot, depth + 1)

    def _from_boundary(self, scope: _Scope, index: int, depth: int) -> _Source | _Const | None:
        if scope.parent is None or scope.definition is None or scope.instance is None:
            return None
        inputs = scope.definition.get("inputs") or []
        if not 0 <= index < len(inputs):
            return None
        name = inputs[index].get("name")
        outer = [i for i in scope.instance.get("inputs") or [] if isinstance(i, Mapping)]
        entry = next((i for i in outer if i.get("name") == name), None)
        if entry is not None and entry.get("link") is not None:
            found = self.resolve_link(scope.parent, entry["link"], depth + 1)
            if found is not None:
                return found
        value = self._promoted_value(scope, index, depth)
        return None if value is _UNSET else _Const(value)

    def _promoted_value(self, scope: _Scope, index: int, depth: int) -> Any:
        """The value of the instance widget a subgraph input is promoted to: the instance's own
        value, else the inner widget's (the frontend creates the promoted widget from it)."""
        if index in scope.host_inputs:
            return scope.host_inputs[index]
        inputs = (scope.definition or {}).get("inputs") or []
        found = _interior_widget(scope, inputs[index], self.info) if 0 <= index < len(inputs) else None
        if found is None or depth > 4 * MAX_DEPTH:
            return _UNSET
        node_id, widget = found
        node = scope.nodes[node_id]
        if node.get("type") in self.definitions:  # promoted again from a nested subgraph
            child = self.child(scope, node)
            names = [i.get("name") for i in ((child.definition or {}).get("inputs") or [])] if child else []
            return self._promoted_value(child, names.index(widget), depth + 1) if widget in names else _UNSET
        schema = self.info.get(str(node.get("type")))
        if schema is None:
            return _UNSET
        return self._widgets(scope, node_id, node, schema).get(widget, _UNSET)

    def resolve_output(self, scope: _Scope, node_id: str, slot: int, depth: int) -> _Source | _Const | None:
        node = scope.nodes.get(node_id)
        if node is None or depth > 4 * MAX_DEPTH:
            return None
        mode, kind = node.get("mode", 0), node.get("type")
        if mode == MUTED:
            return None
        if mode == BYPASSED:
            return self._pass_through(scope, node, slot, depth)
        if kind == "Reroute":
            first = next(iter(node.get("inputs") or []), None)
            return self.resolve_link(scope, first.get("link") if first else None, depth + 1)
        if kind == "PrimitiveNode":
            values = node.get("widgets_values")
            return _Const(values[0]) if isinstance(values, list) and values else None
        if kind == "GetNode":
            return self._get_node(scope, node, depth)
        if kind in self.definitions and _expansion(node) is not None:
            return _Source(scope.prefix + node_id, slot)  # becomes the reelgraph node it was expanded from
        if kind in self.definitions:
            child = self.child(scope, node)
            outputs = (child.definition or {}).get("outputs") or [] if child else []
            if child is None or not 0 <= slot < len(outputs):
                return None
            link_ids = outputs[slot].get("linkIds") or []
            return self.resolve_link(child, link_ids[0], depth + 1) if link_ids else None
        return _Source(scope.prefix + node_id, slot)

    def _pass_through(self, scope: _Scope, node: Mapping[str, Any], slot: int, depth: int) -> _Source | _Const | None:
        outputs = node.get("outputs") or []
        wanted = outputs[slot].get("type") if 0 <= slot < len(outputs) else None
        inputs = [i for i in node.get("inputs") or [] if isinstance(i, Mapping)]
        candidates = ([inputs[slot]] if slot < len(inputs) else []) + inputs
        for entry in candidates:
            if entry.get("link") is not None and _types_overlap(entry.get("type"), wanted):
                return self.resolve_link(scope, entry["link"], depth + 1)
        return None

    def _get_node(self, scope: _Scope, node: Mapping[str, Any], depth: int) -> _Source | _Const | None:
        name = (node.get("widgets_values") or [None])[0]
        for other in scope.nodes.values():
            if other.get("type") == "SetNode" and (other.get("widgets_values") or [None])[0] == name:
                first = next(iter(other.get("inputs") or []), None)
                return self.resolve_link(scope, first.get("link") if first else None, depth + 1)
        return None

    # -- emission ----------------------------------------------------------------------------
    def convert(self) -> dict[str, Any]:
        prompt: dict[str, Any] = {}
        self._emit_scope(self.root, prompt)
        for node in prompt.values():  # inputs pointing at nodes that were not emitted are dropped
            for name, value in list(node["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] not in prompt:
                    del node["inputs"][name]
        return prompt

    def _emit_scope(self, scope: _Scope, prompt: dict[str, Any]) -> None:
        for node_id, node in scope.nodes.items():
            kind = node.get("type")
            if not isinstance(kind, str) or node.get("mode", 0) in (MUTED, BYPASSED) or kind in UI_ONLY:
                continue
            if kind in self.definitions and _expansion(node) is not None:
                self._emit_expanded(scope, node_id, node, prompt)
                continue
            if kind in self.definitions:
                child = self.child(scope, node)
                if child is None:
                    self.problems.append(f"subgraph {kind} (node {scope.prefix}{node_id}) nests too deeply")
                else:
                    self._emit_scope(child, prompt)
                continue
            if _looks_like_uuid(kind):
                self.problems.append(f"node {scope.prefix}{node_id} is an instance of subgraph {kind}, "
                                     "whose definition is missing from the workflow")
                continue
            schema = self.info.get(kind)
            names = ((node.get("properties") or {}).get("reelgraph") or {}).get("widgets")
            if schema is None and isinstance(names, list):  # exported by us without its schema
                schema = NodeSchema(kind, {}, (), (), False, "", kind)
            elif schema is None:
                self.problems.append(f"node type {kind!r} (node {scope.prefix}{node_id}) is not in the object_info: "
                                     "its widget values cannot be mapped to input names (is its pack installed?)")
                continue
            prompt[scope.prefix + node_id] = self._node(scope, node_id, node, schema)

    def _emit_expanded(self, scope: _Scope, node_id: str, node: Mapping[str, Any], prompt: dict[str, Any]) -> None:
        """A subgraph that ``export --expand-comfy`` made of a reelgraph node: that node again,
        provided its stock nodes are still the ones exported (reelgraph compiles them itself)."""
        expanded = _expansion(node) or {}
        recipe_id = ((node.get("properties") or {}).get("reelgraph") or {}).get("id", node.get("title") or node_id)
        type_id = type_id_of(expanded["class_type"]) or expanded["class_type"]
        where = f"node {recipe_id} ({type_id}, expanded into ComfyUI nodes)"
        schema = self.info.get(expanded["class_type"])
        child = self.child(scope, node)
        if schema is None or child is None:
            self.problems.append(f"{where}: {expanded['class_type']!r} is not a reelgraph node type here")
            return
        inner: dict[str, Any] = {}
        known = len(self.problems)
        self._emit_scope(child, inner)
        unreadable, self.problems[known:] = self.problems[known:], []
        if unreadable:
            self.problems.append(f"{where}: reading its stock nodes needs the ComfyUI instance's /object_info "
                                 f"(--object-info); {len(unreadable)} cannot be read, e.g. {min(unreadable)}")
            return
        if canonical_digest(inner) != expanded.get("digest"):
            self.problems.append(f"{where} was edited inside its subgraph: reelgraph builds that node's ComfyUI "
                                 "workflow from the node's inputs, so edits to its stock nodes cannot be kept; undo "
                                 "them, or unpack the subgraph on the canvas to keep them as ComfyUI nodes")
            return
        properties = dict(node.get("properties") or {})
        private = {k: v for k, v in (properties.get("reelgraph") or {}).items() if k != EXPANDED}
        properties["reelgraph"] = private
        pack_node = {**node, "type": expanded["class_type"], "widgets_values": list(expanded.get("widgets_values") or []),
                     "properties": properties}
        prompt[scope.prefix + node_id] = self._node(scope, node_id, pack_node, schema)

    def _widgets(self, scope: _Scope, node_id: str, node: Mapping[str, Any], schema: NodeSchema) -> dict[str, Any]:
        """A node's widget values by input name, as the frontend shows them."""
        raw = node.get("widgets_values")
        properties = node.get("properties") or {}
        if isinstance(raw, Mapping):
            widgets = {k: v for k, v in raw.items() if k != "videopreview"}
        else:
            values = raw if isinstance(raw, list) else []
            names = (properties.get("reelgraph") or {}).get("widgets") if schema.class_type not in self.info else None
            named = node.get("widgets_values_named")
            if names:
                widgets = dict(zip(names, values))
            elif isinstance(named, Mapping) and named and _saved_by_another_version(schema, named):
                widgets = restore_by_name(schema, named)
            else:
                widgets = map_widgets(values, list(schema.inputs.values()))
            for spec, _ in _widget_order(schema, widgets):  # the frontend creates every widget
                kind = spec.config.get("widgetType") or spec.type
                widgets.setdefault(spec.name, UNSAVED_WIDGETS[kind] if kind in UNSAVED_WIDGETS else _default(spec))
            widgets = {k: v for k, v in widgets.items() if v is not None or k not in schema.inputs}
        for (inner, widget), value in scope.host_widgets.items():
            if inner == node_id and widget in widgets:
                widgets[widget] = value
        return widgets

    def _node(self, scope: _Scope, node_id: str, node: Mapping[str, Any], schema: NodeSchema) -> dict[str, Any]:
        properties = node.get("properties") or {}
        widgets = self._widgets(scope, node_id, node, schema)
        inputs: dict[str, Any] = {name: _wrap(value) for name, value in widgets.items()}
        for entry in node.get("inputs") or []:
            if not isinstance(entry, Mapping) or entry.get("link") is None:
                continue
            name = (entry.get("widget") or {}).get("name") or entry.get("name")
            found = self.resolve_link(scope, entry["link"])
            if isinstance(found, _Source):
                inputs[name] = [found.node, found.slot]
            elif isinstance(found, _Const):
                inputs[name] = _wrap(found.value)
        result: dict[str, Any] = {"inputs": inputs, "class_type": schema.class_type}
        meta: dict[str, Any] = {}
        if isinstance(node.get("title"), str):
            meta["title"] = node["title"]
        if isinstance(properties.get("reelgraph"), Mapping):
            meta["reelgraph"] = dict(properties["reelgraph"])
        if meta:
            result["_meta"] = meta
        return result


_UNSET = object()


def _expansion(node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """What ``export --expand-comfy`` recorded on a subgraph instance it made of a reelgraph node."""
    private = (node.get("properties") or {}).get("reelgraph")
    entry = private.get(EXPANDED) if isinstance(private, Mapping) else None
    return entry if isinstance(entry, Mapping) and isinstance(entry.get("class_type"), str) else None


def _looks_like_uuid(text: str) -> bool:
    parts = text.split("-")
    return len(text) == 36 and [len(p) for p in parts] == [8, 4, 4, 4, 12]


def ui_to_api(workflow: Mapping[str, Any], info: ObjectInfo) -> dict[str, Any]:
    """The API-format prompt ComfyUI's frontend would queue for this UI-format workflow.
    Raises WorkflowRefused naming every unsupported feature or unknown node type."""
    if not is_ui_format(workflow):
        raise WorkflowRefused(["not a UI-format workflow (it needs 'nodes' and 'links')"])
    converter = _Converter(workflow, info)
    prompt = converter.convert()
    if converter.problems:
        raise WorkflowRefused(sorted(set(converter.problems)))
    return prompt


# ---------------------------------------------------------------------------------------------
# API (with pack nodes) → recipe


def adopt_pack_nodes(recipe: Recipe, declarations: list[dict[str, Any]], extra: Mapping[str, Any] | None = None) -> Recipe:
    """Turn the pack's nodes of an imported recipe back into reelgraph nodes, params and outputs.
    ``extra`` is the UI workflow's ``extra.reelgraph`` (recipe name, description, meta)."""
    by_id = {d["id"]: d for d in declarations}
    errors: list[GraphError] = []
    ids = _recipe_ids(recipe)
    params: dict[str, ParamSpec] = {}
    param_of: dict[str, str] = {}
    outputs: dict[str, Any] = {}
    nodes: dict[str, NodeSpec] = {}
    pack_outputs: dict[str, list[str]] = {}
    for node_id, spec in recipe.nodes.items():
        class_type = spec.type.removeprefix(COMFY_TYPE_PREFIX)
        comfy = dict(spec.meta.get("comfy") or {})
        meta_block = dict(comfy.get("_meta") or {})
        private = meta_block.pop("reelgraph", None) or {}
        title = meta_block.get("title")
        value_type = param_type_of(class_type)
        if value_type is not None:
            name = title or node_id
            param = _param(name, value_type, spec, errors)
            if param is not None:
                params[name] = param
                param_of[node_id] = name
            continue
        if class_type == OUTPUT_CLASS:
            outputs[title or node_id] = spec.inputs.get("value")
            continue
        type_id = type_id_of(class_type)
        declaration = by_id.get(type_id or "")
        if declaration is None:
            nodes[ids[node_id]] = _comfy_node(spec, comfy, meta_block, private)
            continue
        pack_outputs[node_id] = [p["name"] for p in declaration["outputs"]]
        nodes[ids[node_id]] = NodeSpec(type=type_id, inputs=_pack_inputs(node_id, spec, declaration, private, errors),
                                       nonce=int(private.get("nonce", 0)), meta=dict(private.get("meta") or {}))

    def relink(value: Any, where: str) -> Any:
        if isinstance(value, Link):
            if value.node in param_of:
                return ParamRef(param=param_of[value.node])
            names = pack_outputs.get(value.node)
            output = value.output
            if names is not None and isinstance(output, int) and 0 <= output < len(names):
                output = names[output]
            return Link(link=(ids.get(value.node, value.node), output))
        return value

    nodes = {node_id: spec.model_copy(update={"inputs": {k: relink(v, k) for k, v in spec.inputs.items()}})
             for node_id, spec in nodes.items()}
    recipe_outputs: dict[str, Link] = {}
    for name, value in outputs.items():
        value = relink(value, name)
        if isinstance(value, Link):
            recipe_outputs[name] = value
        else:
            errors.append(GraphError("bad_structure", f"outputs.{name}", f"recipe output {name!r} is not linked to a node output"))
    if errors:
        raise RecipeInvalid(errors)
    extra = dict(extra or {})
    document = {
        "name": extra.get("name", recipe.name),
        "description": extra.get("description", ""),
        "params": {name: spec.model_dump(mode="json", exclude_unset=True) for name, spec in params.items()},
        "nodes": {node_id: spec.model_dump(mode="json", exclude_unset=True) for node_id, spec in nodes.items()},
        "outputs": {name: {"link": list(link.link)} for name, link in recipe_outputs.items()},
        "meta": extra.get("meta", {}),
    }
    return Recipe.model_validate({key: value for key, value in document.items() if value or key == "nodes"})


def _recipe_ids(recipe: Recipe) -> dict[str, str]:
    """Imported node id → recipe node id: the id a recipe export recorded, when it is free."""
    ids: dict[str, str] = {}
    taken = set(recipe.nodes)
    for node_id, spec in recipe.nodes.items():
        wanted = ((spec.meta.get("comfy") or {}).get("_meta") or {}).get("reelgraph", {}).get("id")
        if isinstance(wanted, str) and wanted and wanted != node_id and wanted not in taken:
            taken.add(wanted)
            ids[node_id] = wanted
        else:
            ids[node_id] = node_id
    return ids


def _param(name: str, value_type: str, spec: NodeSpec, errors: list[GraphError]) -> ParamSpec | None:
    declaration = param_declaration(value_type)
    ports = {p["name"]: p for p in declaration["inputs"]}
    values: dict[str, Any] = {}
    for key, port in ports.items():
        raw = spec.inputs.get(key, widget_default(port))
        raw = raw.literal if isinstance(raw, LiteralObject) else raw
        if isinstance(raw, (Link, ParamRef)):
            errors.append(GraphError("bad_structure", f"params.{name}", f"parameter {name!r}: its {key} must be set on the node, not linked"))
            return None
        try:
            values[key] = None if (found := input_value(port, raw)) is UNSET else found
        except ValueError as exc:
            errors.append(GraphError("bad_json", f"params.{name}", f"parameter {name!r}: {key} is not valid JSON ({exc})"))
            return None
    constraints = values.get("constraints") or {}
    if not isinstance(constraints, Mapping):
        errors.append(GraphError("bad_structure", f"params.{name}", f"parameter {name!r}: constraints must be a JSON object"))
        return None
    document: dict[str, Any] = {"type": value_type}
    if not constraints.get("required"):
        document["default"] = values["value"]
    if values.get("description"):
        document["description"] = values["description"]
    document.update({k: constraints[k] for k in ("minimum", "maximum", "choices") if constraints.get(k) is not None})
    return ParamSpec.model_validate(document)


def _comfy_node(spec: NodeSpec, comfy: dict[str, Any], meta_block: dict[str, Any], private: Mapping[str, Any]) -> NodeSpec:
    if "meta" in private:  # a node this project exported: its recipe meta, with the canvas title
        meta = json.loads(json.dumps(private["meta"]))
        saved = meta.setdefault("comfy", {}).setdefault("_meta", {})
        if "title" in meta_block:
            saved["title"] = meta_block["title"]
        else:
            saved.pop("title", None)
        if not saved:
            del meta["comfy"]["_meta"]
        if not meta["comfy"]:
            del meta["comfy"]
    else:
        if meta_block:
            comfy["_meta"] = meta_block
        else:
            comfy.pop("_meta", None)
        meta = {"comfy": comfy} if comfy else {}
    inputs = dict(spec.inputs)
    for name, value in (private.get("unset") or {}).items():
        given = _literal(inputs.get(name))
        if isinstance(given, Mapping) and set(given) == {"__value__"}:
            given = given["__value__"]
        if name in inputs and given == value:
            del inputs[name]
    for name, value in (private.get("extra_inputs") or {}).items():
        inputs.setdefault(name, LiteralObject(literal=value) if isinstance(value, dict) else value)
    return NodeSpec(type=spec.type, inputs=inputs, nonce=int(private.get("nonce", 0)), meta=meta)


def _pack_inputs(node_id: str, spec: NodeSpec, declaration: Mapping[str, Any], private: Mapping[str, Any],
                 errors: list[GraphError]) -> dict[str, Any]:
    ports = {p["name"]: p for p in declaration["inputs"]}
    unset = set(private.get("unset") or [])
    wrapped = set(private.get("wrapped") or [])
    inputs: dict[str, Any] = {}
    for name, raw in spec.inputs.items():
        port = ports.get(name)
        if isinstance(raw, Link) or port is None:
            inputs[name] = raw  # unknown inputs are kept for validation to name
            continue
        raw = raw.literal if isinstance(raw, LiteralObject) else raw
        if isinstance(raw, Mapping) and set(raw) == {"__value__"}:
            raw = raw["__value__"]
        if name in unset and raw == widget_default(port):
            continue
        try:
            value = input_value(port, raw)
        except ValueError as exc:
            errors.append(GraphError("bad_json", f"nodes.{node_id}.inputs.{name}", f"not valid JSON text: {exc}", node_id))
            continue
        if value is UNSET:
            continue
        inputs[name] = LiteralObject(literal=value) if isinstance(value, dict) or name in wrapped else value
    return inputs


def recipe_from_ui(workflow: Mapping[str, Any], info: ObjectInfo, declarations: list[dict[str, Any]],
                   name: str | None = None) -> Recipe:
    """A UI-format workflow as a recipe (``info`` must include the pack's classes)."""
    prompt = ui_to_api(workflow, info)
    extra = (workflow.get("extra") or {}).get("reelgraph") if isinstance(workflow.get("extra"), Mapping) else None
    recipe = recipe_from_api(prompt, name=name)
    return adopt_pack_nodes(recipe, declarations, extra if isinstance(extra, Mapping) else {"name": name})


# ---------------------------------------------------------------------------------------------
# recipe → UI

NODE_WIDTH, WIDE_NODE_WIDTH = 340, 420
TITLE_HEIGHT, SLOT_HEIGHT, WIDGET_HEIGHT, MULTILINE_HEIGHT = 36, 24, 30, 96
COLUMN_GAP, ROW_GAP, GROUP_PAD, GROUP_TITLE = 110, 60, 24, 56


@dataclass
class _UiNode:
    ui_id: int
    key: str  # recipe node id, "param:<name>" or "output:<name>"
    class_type: str
    title: str | None
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    widgets_values: list[Any]
    properties: dict[str, Any]
    category: str
    multiline: int = 0
    sources: list[str] = field(default_factory=list)
    pos: list[float] = field(default_factory=lambda: [0.0, 0.0])

    def size(self) -> list[float]:
        sockets = sum(1 for i in self.inputs if "widget" not in i)
        widgets = len(self.widgets_values)
        width = WIDE_NODE_WIDTH if self.multiline else NODE_WIDTH
        height = (TITLE_HEIGHT + SLOT_HEIGHT * max(sockets, len(self.outputs), 1) + WIDGET_HEIGHT * widgets
                  + MULTILINE_HEIGHT * self.multiline)
        return [width, height]


def recipe_to_ui(recipe: Recipe, info: ObjectInfo, declarations: list[dict[str, Any]],
                 expand: ObjectInfo | None = None) -> dict[str, Any]:
    """The recipe as a UI-format (0.4) workflow with a generated layout. ``info`` must include the
    pack's classes; ComfyUI nodes missing from it keep their widgets in recipe order. With
    ``expand`` (a ComfyUI instance's schemas), nodes that run on ComfyUI become subgraphs of the
    stock nodes they compile to there (``comfy_expand``)."""
    by_id = {d["id"]: d for d in declarations}
    ui_ids = _ui_ids(recipe)
    nodes: dict[str, _UiNode] = {}
    subgraphs: list[dict[str, Any]] = []
    next_id = max([*ui_ids.values(), 0]) + 1
    for name, param in recipe.params.items():
        nodes[f"param:{name}"] = _param_node(next_id, name, param)
        next_id += 1
    unexpandable: list[GraphError] = []
    for node_id, spec in recipe.nodes.items():
        nodes[node_id] = _recipe_node(ui_ids[node_id], node_id, spec, recipe, info, by_id)
        if expand is not None:
            try:
                prompt = compiled_workflow(node_id, spec, recipe, expand)
            except RecipeInvalid as exc:
                unexpandable.extend(exc.errors)
                continue
            if prompt is not None:
                nodes[node_id], subgraph = _expanded_node(nodes[node_id], node_id, spec, prompt, info, declarations)
                subgraphs.append(subgraph)
    if unexpandable:
        raise RecipeInvalid(unexpandable)
    for name in recipe.outputs:
        nodes[f"output:{name}"] = _UiNode(next_id, f"output:{name}", OUTPUT_CLASS, name,
                                          [{"name": "value", "type": "*", "link": None}], [], [],
                                          {"Node name for S&R": OUTPUT_CLASS}, "outputs")
        next_id += 1
    links = _connect(recipe, nodes, by_id, info)
    groups = _layout(recipe, nodes)
    digest = hashlib.sha256(json.dumps(recipe.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    extra: dict[str, Any] = {"ds": {"scale": 0.7, "offset": [40, 40]}}
    private = {k: v for k, v in (("name", recipe.name), ("description", recipe.description), ("meta", recipe.meta)) if v}
    if private:
        extra["reelgraph"] = private
    order = {key: index for index, key in enumerate(_topological(recipe, nodes))}
    document: dict[str, Any] = {
        "id": str(uuid.UUID(digest[:32])),
        "revision": 0,
        "last_node_id": max([n.ui_id for n in nodes.values()], default=0),
        "last_link_id": len(links),
        "nodes": [_serialize(node, order[key]) for key, node in sorted(nodes.items(), key=lambda kv: kv[1].ui_id)],
        "links": links,
        "groups": groups,
        "config": {},
        "extra": extra,
        "version": 0.4,
    }
    if subgraphs:
        document["definitions"] = {"subgraphs": subgraphs}
        renumber_subgraphs(document)
    return document


def _expanded_node(node: _UiNode, node_id: str, spec: NodeSpec, prompt: dict[str, Any], info: ObjectInfo,
                   declarations: list[dict[str, Any]]) -> tuple[_UiNode, dict[str, Any]]:
    """The pack node as an instance of a subgraph holding the stock nodes of ``prompt``; the pack
    node's own widget values ride in ``properties.reelgraph.expanded`` for the way back."""
    inner = json.loads(json.dumps(recipe_to_ui(recipe_from_api(prompt), info, declarations)))
    digest = canonical_digest(ui_to_api({"nodes": inner["nodes"], "links": inner["links"]}, info))
    sockets = [{k: v for k, v in entry.items() if k != "widget"} for entry in node.inputs]
    subgraph = definition(node_id, spec, inner, sockets, node.outputs, digest)
    private = {**node.properties.get("reelgraph", {}),
               EXPANDED: {"class_type": node.class_type, "widgets_values": node.widgets_values, "digest": digest}}
    instance = _UiNode(node.ui_id, node.key, subgraph["id"], node.title, sockets, node.outputs, [],
                       {"reelgraph": private}, node.category)
    return instance, subgraph


def _ui_ids(recipe: Recipe) -> dict[str, int]:
    """Recipe node ids that are plain numbers keep them (graphs imported from ComfyUI)."""
    ids: dict[str, int] = {}
    for node_id in recipe.nodes:
        if node_id.isdigit() and not node_id.startswith("0") and int(node_id) < 2**31:
            ids[node_id] = int(node_id)
    next_id = max([*ids.values(), 0]) + 1
    for node_id in recipe.nodes:
        if node_id not in ids:
            ids[node_id] = next_id
            next_id += 1
    return ids


def _param_node(ui_id: int, name: str, param: ParamSpec) -> _UiNode:
    declaration = param_declaration(param.type)
    ports = {p["name"]: p for p in declaration["inputs"]}
    constraints = {k: getattr(param, k) for k in ("minimum", "maximum", "choices") if getattr(param, k) is not None}
    if param.required:
        constraints["required"] = True
    values = [
        widget_value(ports["value"], param.default) if not param.required else widget_default(ports["value"]),
        param.description,
        widget_value(ports["constraints"], constraints) if constraints else "",
    ]
    inputs = [_pack_input(p) for p in ordered_inputs(declaration)]
    outputs = [{"name": "value", "type": OUTPUT_SOCKETS[param.type], "links": []}]
    multiline = 1 + (1 if is_text_widget(ports["value"]) else 0)
    return _UiNode(ui_id, f"param:{name}", param_class(param.type), name, inputs, outputs, values,
                   {"Node name for S&R": param_class(param.type)}, "parameters", multiline)


def _pack_input(port: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": port["name"], "type": INPUT_SOCKETS[port["type"]],
                             "widget": {"name": port["name"]}, "link": None}
    if port.get("optional"):
        entry["shape"] = 7
    return entry


def _literal(value: Any) -> Any:
    return value.literal if isinstance(value, LiteralObject) else value


def _param_default(recipe: Recipe, value: Any) -> Any:
    param = recipe.params.get(value.param) if isinstance(value, ParamRef) else None
    return param.default if param is not None and not param.required else None


def _recipe_node(ui_id: int, node_id: str, spec: NodeSpec, recipe: Recipe, info: ObjectInfo,
                 declarations: Mapping[str, dict[str, Any]]) -> _UiNode:
    private: dict[str, Any] = {}
    if str(ui_id) != node_id:
        private["id"] = node_id
    if spec.nonce:
        private["nonce"] = spec.nonce
    if is_comfy_type(spec.type):
        return _comfy_ui_node(ui_id, node_id, spec, recipe, info, private)
    class_type = class_name(spec.type)
    declaration = declarations.get(spec.type)
    if declaration is None:
        raise RecipeInvalid([GraphError("unknown_node_type", f"nodes.{node_id}.type",
                                        f"unknown node type {spec.type!r}", node_id)])
    values: list[Any] = []
    unset, wrapped = [], []
    for port in ordered_inputs(declaration):
        value = spec.inputs.get(port["name"])
        if port["name"] not in spec.inputs:
            unset.append(port["name"])
            values.append(widget_default(port))
        elif isinstance(value, (Link, ParamRef)):
            shown = _param_default(recipe, value)
            values.append(widget_default(port) if shown is None else widget_value(port, shown))
        else:
            if isinstance(value, LiteralObject) and not isinstance(value.literal, dict):
                wrapped.append(port["name"])
            values.append(widget_value(port, _literal(value)))
    if unset:
        private["unset"] = unset
    if wrapped:
        private["wrapped"] = wrapped
    if spec.meta:
        private["meta"] = spec.meta
    multiline = sum(1 for p in declaration["inputs"] if is_text_widget(p) or p["type"] == "string"
                    and p["name"] in ("text", "script", "template", "prompt", "style", "topic"))
    properties: dict[str, Any] = {"Node name for S&R": class_type}
    if private:
        properties["reelgraph"] = private
    return _UiNode(ui_id, node_id, class_type, node_id, [_pack_input(p) for p in ordered_inputs(declaration)],
                   [{"name": p["name"], "type": OUTPUT_SOCKETS[p["type"]], "links": []} for p in declaration["outputs"]],
                   values, properties, declaration["category"], multiline)


def _comfy_ui_node(ui_id: int, node_id: str, spec: NodeSpec, recipe: Recipe, info: ObjectInfo,
                   private: dict[str, Any]) -> _UiNode:
    class_type = spec.type.removeprefix(COMFY_TYPE_PREFIX)
    schema = info.get(class_type)
    meta_block = (spec.meta.get("comfy") or {}).get("_meta") or {}
    title = meta_block.get("title") if isinstance(meta_block.get("title"), str) else None
    if spec.meta:
        private["meta"] = spec.meta
    inputs: list[dict[str, Any]] = []
    values: list[Any] = []
    literal_values = {name: _literal(v) if not isinstance(v, ParamRef) else _param_default(recipe, v)
                      for name, v in spec.inputs.items() if not isinstance(v, Link)}
    literal_values = {k: (v["__value__"] if isinstance(v, Mapping) and set(v) == {"__value__"} else v)
                      for k, v in literal_values.items()}
    used: set[str] = set()
    if schema is not None:
        widget_names = set()
        for widget, control in _widget_order(schema, literal_values):
            widget_names.add(widget.name)
            used.add(widget.name)
            value = literal_values.get(widget.name)
            values.append(_default(widget) if value is None else value)
            if control:
                values.append("fixed")  # a recipe's values never change between runs
        for name, input_spec in schema.inputs.items():
            entry: dict[str, Any] = {"name": name, "type": "COMBO" if input_spec.is_combo else input_spec.type,
                                     "link": None}
            if name in widget_names:
                entry["widget"] = {"name": name}
            elif name not in spec.inputs and not input_spec.required:
                entry["shape"] = 7
            inputs.append(entry)
            used.add(name)
        for name in spec.inputs:  # dynamic sub-inputs given as links ("values.a")
            if name not in used and isinstance(spec.inputs[name], Link):
                inputs.append({"name": name, "type": "*", "link": None})
                used.add(name)
        outputs = [{"name": str(n), "type": t if isinstance(t, str) else "COMBO", "links": []}
                   for n, t in zip(schema.output_names, schema.outputs)]
        subs = [sub.name for name, input_spec in schema.inputs.items() if input_spec.is_combo and name in literal_values
                for sub in input_spec.sub_inputs(literal_values[name])]
        if subs:  # VideoHelperSuite's format options: its nodes save widgets_values as a dict
            named = {w.name: literal_values.get(w.name, _default(w)) for w, _ in _widget_order(schema, literal_values)}
            named.update({name: literal_values[name] for name in subs if name in literal_values})
            values = named  # type: ignore[assignment]
            used.update(named)
        unset = {w.name: _default(w) for w, _ in _widget_order(schema, literal_values) if w.name not in spec.inputs}
        if unset:  # widgets the recipe leaves to ComfyUI: they stay out of the recipe on import
            private["unset"] = unset
        extra_inputs = {k: v for k, v in spec.inputs.items() if k not in used}
        if extra_inputs:
            private["extra_inputs"] = {k: _literal(v) for k, v in extra_inputs.items()}
    else:
        names = [name for name in spec.inputs if not isinstance(spec.inputs[name], Link)]
        private["widgets"] = names
        values = [literal_values[name] for name in names]
        inputs = [{"name": name, "type": "*", "link": None} for name, v in spec.inputs.items() if isinstance(v, Link)]
        slots = [v.output for s in recipe.nodes.values() for v in s.inputs.values()
                 if isinstance(v, Link) and v.node == node_id and isinstance(v.output, int)]
        slots += [link.output for link in recipe.outputs.values() if link.node == node_id and isinstance(link.output, int)]
        outputs = [{"name": f"output {i}", "type": "*", "links": []} for i in range(max(slots, default=-1) + 1)]
    properties: dict[str, Any] = {"Node name for S&R": class_type}
    if private:
        properties["reelgraph"] = private
    category = (schema.python_module if schema else "custom").split(".")[-1]
    multiline = sum(1 for name, spec_ in (schema.inputs.items() if schema else ())
                    if spec_.config.get("multiline"))
    return _UiNode(ui_id, node_id, class_type, title, inputs, outputs, values, properties, category, multiline)


def _source_slot(nodes: Mapping[str, _UiNode], link: Link) -> int | None:
    source = nodes.get(link.node)
    if source is None:
        return None
    if isinstance(link.output, int):
        return link.output if link.output < len(source.outputs) else None
    names = [o["name"] for o in source.outputs]
    return names.index(link.output) if link.output in names else None


def _connect(recipe: Recipe, nodes: Mapping[str, _UiNode], declarations: Mapping[str, Any], info: ObjectInfo) -> list[list[Any]]:
    links: list[list[Any]] = []
    errors: list[GraphError] = []

    def connect(source_key: str, slot: int, target: _UiNode, input_name: str) -> None:
        source = nodes[source_key]
        index = next((i for i, entry in enumerate(target.inputs) if entry["name"] == input_name), None)
        if index is None:
            target.inputs.append({"name": input_name, "type": "*", "link": None})
            index = len(target.inputs) - 1
        link_id = len(links) + 1
        kind = source.outputs[slot]["type"]
        links.append([link_id, source.ui_id, slot, target.ui_id, index, kind])
        source.outputs[slot]["links"].append(link_id)
        target.inputs[index]["link"] = link_id
        target.sources.append(source_key)

    for node_id, spec in sorted(recipe.nodes.items(), key=lambda item: nodes[item[0]].ui_id):
        for input_name, value in spec.inputs.items():
            if isinstance(value, ParamRef) and f"param:{value.param}" in nodes:
                connect(f"param:{value.param}", 0, nodes[node_id], input_name)
            elif isinstance(value, Link):
                slot = _source_slot(nodes, value)
                if slot is None:
                    errors.append(GraphError("missing_output", f"nodes.{node_id}.inputs.{input_name}",
                                             f"links to {value.node}.{value.output}, which does not exist", node_id))
                    continue
                connect(value.node, slot, nodes[node_id], input_name)
    for name, link in recipe.outputs.items():
        slot = _source_slot(nodes, link)
        if slot is None:
            errors.append(GraphError("missing_output", f"outputs.{name}", f"links to {link.node}.{link.output}, which does not exist"))
            continue
        connect(link.node, slot, nodes[f"output:{name}"], "value")
    if errors:
        raise RecipeInvalid(errors)
    return links


def _topological(recipe: Recipe, nodes: Mapping[str, _UiNode]) -> list[str]:
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    for key, node in nodes.items():
        for source in node.sources:
            graph.add_edge(source, key)
    try:
        return list(nx.lexicographical_topological_sort(graph, key=lambda k: nodes[k].ui_id))
    except nx.NetworkXUnfeasible:
        return sorted(nodes, key=lambda k: nodes[k].ui_id)


def _layout(recipe: Recipe, nodes: Mapping[str, _UiNode]) -> list[dict[str, Any]]:
    """Columns by dependency depth (parameters first, outputs last), rows ordered by where each
    node's sources sit; sizes are generous so nodes never overlap; one group per column."""
    depth: dict[str, int] = {}
    for key in _topological(recipe, nodes):
        node = nodes[key]
        if key.startswith("param:"):
            depth[key] = 0
        else:
            depth[key] = 1 + max((depth.get(s, 0) for s in node.sources), default=0)
    last = max((d for k, d in depth.items() if not k.startswith("output:")), default=0)
    for key in nodes:
        if key.startswith("output:"):
            depth[key] = last + 1
    columns: dict[int, list[str]] = {}
    for key in sorted(nodes, key=lambda k: nodes[k].ui_id):
        columns.setdefault(depth[key], []).append(key)
    groups: list[dict[str, Any]] = []
    position: dict[str, float] = {}
    x = 0.0
    for column in sorted(columns):
        keys = columns[column]
        keys.sort(key=lambda k: (_barycenter(nodes[k], position), nodes[k].ui_id))
        y = 0.0
        width = max(nodes[k].size()[0] for k in keys)
        for key in keys:
            node = nodes[key]
            node.pos = [x, y]
            position[key] = y
            y += node.size()[1] + ROW_GAP
        categories = sorted({nodes[k].category for k in keys})
        title = ("Parameters" if all(k.startswith("param:") for k in keys) else "Outputs"
                 if all(k.startswith("output:") for k in keys) else f"Stage {column}: {', '.join(categories)}")
        groups.append({"id": len(groups) + 1, "title": title,
                       "bounding": [x - GROUP_PAD, -GROUP_TITLE, width + 2 * GROUP_PAD, y - ROW_GAP + GROUP_TITLE + GROUP_PAD],
                       "color": "#3f789e", "font_size": 24, "flags": {}})
        x += width + COLUMN_GAP + 2 * GROUP_PAD
    return groups


def _barycenter(node: _UiNode, position: Mapping[str, float]) -> float:
    placed = [position[s] for s in node.sources if s in position]
    return sum(placed) / len(placed) if placed else 0.0


def _serialize(node: _UiNode, order: int) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": node.ui_id,
        "type": node.class_type,
        "pos": list(node.pos),
        "size": node.size(),
        "flags": {},
        "order": order,
        "mode": 0,
        "inputs": node.inputs,
        "outputs": [dict(o, links=o["links"] or None, slot_index=i) for i, o in enumerate(node.outputs)],
        "properties": node.properties,
        "widgets_values": node.widgets_values,
    }
    if node.title is not None:
        document["title"] = node.title
    return document


# ---------------------------------------------------------------------------------------------
# Entry points for the command line and the server

OBJECT_INFO_ENV = "REELGRAPH_COMFY_OBJECT_INFO"


def load_object_info(source: str | None) -> dict[str, Any] | None:
    """An ``/object_info`` document from a saved dump (path) or a live instance (http URL)."""
    if not source:
        return None
    if source.startswith(("http://", "https://")):
        import requests

        url = source.rstrip("/")
        url = url if url.endswith("/object_info") else url + "/api/object_info"
        try:
            response = requests.get(url, timeout=30)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise RecipeInvalid([GraphError("bad_option", "", f"cannot read /object_info from {url}: {exc}")]) from None
    else:
        from pathlib import Path

        try:
            document = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RecipeInvalid([GraphError("bad_option", "", f"cannot read object_info {source}: {exc}")]) from None
    if not isinstance(document, dict):
        raise RecipeInvalid([GraphError("bad_option", "", f"{source} is not an /object_info document")])
    return document


def import_workflow(document: Any, object_info_document: Mapping[str, Any] | None, registry: Any = None,
                    name: str | None = None) -> Recipe:
    """A ComfyUI workflow in UI or API format (or a ``/prompt`` body) as a recipe. Unsupported
    features and unknown node types are refused with RecipeInvalid naming them."""
    declarations = pack_declarations(registry)
    if is_ui_format(document):
        info = combined_info(object_info_document, declarations)
        try:
            return with_saved_outputs(recipe_from_ui(document, info, declarations, name=name))
        except WorkflowRefused as exc:
            raise RecipeInvalid([GraphError("bad_structure", "", problem) for problem in exc.problems]) from None
    if not isinstance(document, Mapping):
        raise RecipeInvalid([GraphError("bad_structure", "", "a ComfyUI workflow is a JSON object")])
    recipe = recipe_from_api(document, name=name)
    if not any(type_id_of(spec.type.removeprefix(COMFY_TYPE_PREFIX)) for spec in recipe.nodes.values()):
        return with_saved_outputs(recipe)  # ComfyUI nodes only: kept exactly, so it exports back identical
    return with_saved_outputs(adopt_pack_nodes(recipe, declarations, {"name": name}))


def export_ui(recipe: Recipe, object_info_document: Mapping[str, Any] | None, registry: Any = None,
              expand_comfy: bool = False) -> dict[str, Any]:
    """The recipe as a UI workflow; with ``expand_comfy``, nodes that run on ComfyUI become
    subgraphs of the stock nodes they compile to on that ``/object_info`` (which it needs)."""
    declarations = pack_declarations(registry)
    if expand_comfy and not object_info_document:
        raise RecipeInvalid([GraphError("bad_option", "", "expanding ComfyUI nodes needs the instance's /object_info "
                                                          "(--object-info FILE_OR_URL): the compiler fills and checks "
                                                          "every stock node from it")])
    expand = ObjectInfo(object_info_document) if expand_comfy and object_info_document else None
    return recipe_to_ui(recipe, combined_info(object_info_document, declarations), declarations, expand)
