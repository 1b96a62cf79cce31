"""ComfyUI node schemas (``GET /object_info``) and the server's prompt validation, reproduced.

``check_prompt`` follows ``execution.validate_prompt`` (ComfyUI v0.26) closely enough that the
test server answers ``POST /prompt`` with it, error JSON included; ``validate_workflow`` is the
same check as a flat list of :class:`WorkflowError` with plain messages, for the compiler.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCALAR_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN"})
# V3 dynamic inputs: their sub-inputs arrive as dotted keys ("values.a") and are typed at run time.
DYNAMIC_TYPES = frozenset(
    {"COMFY_AUTOGROW_V3", "COMFY_DYNAMICCOMBO_V3", "COMFY_MATCHTYPE_V3", "COMFY_DYNAMICSLOT_V3", "COMFY_MULTITYPED_V3"}
)
AUTOGROW, DYNAMIC_COMBO, DYNAMIC_SLOT, MATCH_TYPE = (
    "COMFY_AUTOGROW_V3", "COMFY_DYNAMICCOMBO_V3", "COMFY_DYNAMICSLOT_V3", "COMFY_MATCHTYPE_V3")
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "upload")
# A node whose validate_inputs takes **kwargs: ComfyUI then skips the built-in checks of every input.
ALL_INPUTS = frozenset({"*"})
# Inputs a node's own VALIDATE_INPUTS names, which switches off ComfyUI's built-in combo/min/max
# check for them (the node checks the file exists instead). object_info does not show this, so the
# loaders we know of are listed; combos with an upload flag are treated the same way.
SELF_VALIDATED = {
    # nodes_logic.CustomComboNode.validate_inputs(choice, index=0, **kwargs): its options are
    # written in the frontend, so the server's option list is empty and never checked.
    "CustomCombo": ALL_INPUTS,
    "LoadImage": frozenset({"image"}),
    "LoadImageMask": frozenset({"image"}),
    "LoadImageOutput": frozenset({"image"}),
    "LoadVideo": frozenset({"file"}),
    "LoadAudio": frozenset({"audio"}),
    "VHS_LoadVideo": frozenset({"video"}),
    "VHS_LoadVideoFFmpeg": frozenset({"video"}),
    "VHS_LoadAudioUpload": frozenset({"audio"}),
}
MODEL_FILE_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx", ".pkl")


@dataclass(frozen=True)
class InputSpec:
    """One declared input. ``type`` is ``COMBO`` for both combo encodings (options in ``options``)."""

    name: str
    type: str
    required: bool
    config: Mapping[str, Any]
    options: tuple[Any, ...] | None = None
    raw: Any = None  # the spec exactly as object_info gave it; ComfyUI echoes it as input_config

    @property
    def is_combo(self) -> bool:
        return self.options is not None

    @property
    def is_widget(self) -> bool:
        return self.is_combo or self.type in SCALAR_TYPES

    @property
    def is_upload(self) -> bool:
        return any(self.config.get(flag) for flag in UPLOAD_FLAGS)

    def default(self) -> Any:
        """The value the ComfyUI frontend would put in a fresh node (declared default, else the
        first option, else the minimum or zero)."""
        if "default" in self.config:
            return self.config["default"]
        if self.is_combo:
            return self.options[0] if self.options else None
        if self.type in ("INT", "FLOAT"):
            low = self.config.get("min", 0)
            return max(low, 0) if self.type == "INT" else float(max(low, 0))
        if self.type == "STRING":
            return ""
        if self.type == "BOOLEAN":
            return False
        return None

    def sub_inputs(self, value: Any) -> tuple[InputSpec, ...]:
        """Extra inputs a combo value brings with it (VHS_VideoCombine ``format`` → ``formats``)."""
        formats = self.config.get("formats")
        specs = formats.get(value) if isinstance(formats, Mapping) else None
        if not isinstance(specs, list):  # VHS_LoadVideo's formats are presets (dicts), not inputs
            return ()
        return tuple(parse_input(entry[0], list(entry[1:3]), required=True) for entry in specs if entry)


@dataclass(frozen=True)
class NodeSchema:
    class_type: str
    inputs: Mapping[str, InputSpec]  # in input_order: required first, then optional
    outputs: tuple[Any, ...]
    output_names: tuple[str, ...]
    output_node: bool
    python_module: str
    display_name: str

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.inputs.items() if spec.required)

    @property
    def api_node(self) -> bool:
        """A Comfy.org API node (Kling, ...): it needs the Comfy.org key in the prompt's extra_data."""
        return self.python_module.startswith("comfy_api_nodes")

    @property
    def pack(self) -> str:
        """The custom node pack a class comes from, or ``core``."""
        if self.python_module.startswith("custom_nodes."):
            return self.python_module.split(".", 1)[1]
        return "core"


def parse_input(name: str, spec: Any, required: bool) -> InputSpec:
    """One ``[type, {options}]`` entry, in either combo encoding."""
    if isinstance(spec, str):  # V1 hidden style ("PROMPT"); not expected for visible inputs
        spec = [spec]
    kind = spec[0] if spec else "*"
    config = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    if isinstance(kind, (list, tuple)):  # legacy combo: the option list is the type
        return InputSpec(name, "COMBO", required, config, tuple(kind), spec)
    if kind == "COMBO":
        return InputSpec(name, "COMBO", required, config, tuple(config.get("options", ())), spec)
    return InputSpec(name, str(kind), required, config, None, spec)


def parse_node(class_type: str, entry: Mapping[str, Any]) -> NodeSchema:
    sections = entry.get("input", {}) or {}
    order = entry.get("input_order", {}) or {}
    inputs: dict[str, InputSpec] = {}
    for section in ("required", "optional"):
        declared = sections.get(section, {}) or {}
        names = [n for n in order.get(section, []) if n in declared] + [n for n in declared if n not in order.get(section, [])]
        for name in names:
            inputs[name] = parse_input(name, declared[name], required=section == "required")
    outputs = tuple(entry.get("output", []) or [])
    output_names = tuple(entry.get("output_name", []) or [str(o) for o in outputs])
    return NodeSchema(
        class_type=class_type,
        inputs=inputs,
        outputs=outputs,
        output_names=output_names,
        output_node=bool(entry.get("output_node", False)),
        python_module=str(entry.get("python_module", "")),
        display_name=str(entry.get("display_name") or class_type),
    )


class ObjectInfo(Mapping[str, NodeSchema]):
    """A parsed ``/object_info`` document; ``raw`` keeps the document itself (the test server serves it)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.raw = document
        self._nodes = {name: parse_node(name, entry) for name, entry in document.items() if isinstance(entry, Mapping)}

    @classmethod
    def load(cls, path: str | Path) -> ObjectInfo:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def __getitem__(self, class_type: str) -> NodeSchema:
        return self._nodes[class_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def combo(self, class_type: str, input_name: str) -> tuple[Any, ...]:
        """Options of a combo input, empty when the class or input is absent."""
        schema = self._nodes.get(class_type)
        spec = schema.inputs.get(input_name) if schema else None
        return spec.options or () if spec else ()


# ---------------------------------------------------------------------------------------------
# Errors in ComfyUI's shape, with a plain sentence beside them


@dataclass(frozen=True)
class WorkflowError:
    """One problem: ComfyUI's error ``type`` and object (``comfy``) and a plain-words cause."""

    kind: str
    cause: str
    node_id: str | None = None
    class_type: str | None = None
    input_name: str | None = None
    comfy: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.node_id is None:
            return self.cause
        return f"node {self.node_id} ({self.class_type or '?'}): {self.cause}"


def looks_like_model_file(value: Any) -> bool:
    return isinstance(value, str) and value.lower().endswith(MODEL_FILE_SUFFIXES)


def explain(entry: Mapping[str, Any], instance: str | None = None) -> str:
    """A plain sentence for one ComfyUI error object (validation or whole-prompt)."""
    kind = str(entry.get("type", ""))
    details = str(entry.get("details", "") or "")
    extra = entry.get("extra_info") or {}
    name = extra.get("input_name") or details.split(",")[0].split(":")[0].strip()
    received = extra.get("received_value")
    where = f"on instance {instance}" if instance else "on this ComfyUI"
    if kind == "required_input_missing":
        return f"required input '{name}' is missing"
    if kind == "value_not_in_list":
        if looks_like_model_file(received):
            return f"model file {received} is not {where} (input '{name}')"
        return f"input '{name}': {received!r} is not one of the allowed values ({details.split(' not in ', 1)[-1]})"
    if kind == "value_bigger_than_max":
        return f"input '{name}' is {received}, above the maximum {_limit(entry, 'max')}"
    if kind == "value_smaller_than_min":
        return f"input '{name}' is {received}, below the minimum {_limit(entry, 'min')}"
    if kind == "invalid_input_type":
        wanted = str(entry.get("message", "")).rsplit(" ", 2)[-2] if entry.get("message") else "the declared type"
        return f"input '{name}' cannot be read as {wanted}: {received!r}"
    if kind == "return_type_mismatch":
        linked = extra.get("linked_node") or ["?", "?"]
        wanted = details.rsplit("input_type(", 1)[-1].rstrip(")") if "input_type(" in details else "?"
        return (f"input '{name}' needs {wanted} but is linked to output {linked[1]} of node {linked[0]}, "
                f"which gives {extra.get('received_type', '?')}")
    if kind == "bad_linked_input":
        return f"input '{name}' must be a link [node_id, output_index], got {received!r}"
    if kind == "custom_validation_failed":
        return f"input '{name}' was refused by the node: {details.split(' - ', 1)[-1]}"
    if kind == "missing_node_type" or (kind == "invalid_prompt" and "does not exist" in str(entry.get("message", ""))):
        cls = extra.get("class_type") or str(entry.get("message", "")).split("node ")[-1].split(" does")[0]
        return f"node class {cls} is not {where} (custom node pack not installed?)"
    if kind == "prompt_no_outputs":
        return "the workflow has no output node (SaveImage, SaveVideo, VHS_VideoCombine, ...)"
    if kind == "prompt_outputs_failed_validation":
        return "no output of the workflow passed validation"
    if kind == "invalid_prompt_id":
        return "prompt_id must be a canonical lowercase UUID"
    if kind == "dependency_cycle":
        return f"the workflow has a dependency cycle: {details}"
    if kind == "value_not_on_step":
        return f"input '{name}' is {received}, not on the step {extra.get('step')} from {extra.get('min', 0)}"
    message = str(entry.get("message", kind))
    return f"{message}: {details}" if details else message


def _limit(entry: Mapping[str, Any], key: str) -> Any:
    config = (entry.get("extra_info") or {}).get("input_config") or [None, {}]
    return config[1].get(key) if len(config) > 1 and isinstance(config[1], Mapping) else "?"


def error_from_comfy(entry: Mapping[str, Any], node_id: str | None = None, class_type: str | None = None,
                     instance: str | None = None) -> WorkflowError:
    extra = entry.get("extra_info") or {}
    return WorkflowError(
        kind=str(entry.get("type", "")),
        cause=explain(entry, instance),
        node_id=node_id if node_id is not None else extra.get("node_id"),
        class_type=class_type if class_type is not None else extra.get("class_type"),
        input_name=extra.get("input_name"),
        comfy=dict(entry),
    )


# ---------------------------------------------------------------------------------------------
# validate_prompt


@dataclass
class PromptCheck:
    """What ``validate_prompt`` decides: a whole-prompt ``error`` (then nothing runs), per-node
    ``node_errors`` in ComfyUI's JSON shape, and the output nodes that validated."""

    error: dict[str, Any] | None
    node_errors: dict[str, dict[str, Any]]
    good_outputs: list[str]

    @property
    def ok(self) -> bool:
        return self.error is None

    def errors(self, instance: str | None = None) -> list[WorkflowError]:
        found = [
            error_from_comfy(entry, node_id, detail.get("class_type"), instance)
            for node_id, detail in self.node_errors.items()
            for entry in detail["errors"]
        ]
        if self.error is not None and not found:
            found.append(error_from_comfy(self.error, instance=instance))
        return found


# A node's own input check, as VALIDATE_INPUTS: (node_id, class_type, inputs) -> [(input, details)].
CustomCheck = Callable[[str, str, Mapping[str, Any]], list[tuple[str, str]]]


def _entry(kind: str, message: str, details: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


class _Validator:
    def __init__(self, prompt: Mapping[str, Any], info: ObjectInfo, custom: Mapping[str, CustomCheck]) -> None:
        self.prompt = prompt
        self.info = info
        self.custom = custom
        self.validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
        self.visiting: set[str] = set()

    def node(self, node_id: str) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in self.validated:
            return self.validated[node_id]
        self.visiting.add(node_id)
        try:
            result = self._check(node_id)
        finally:
            self.visiting.discard(node_id)
        self.validated[node_id] = result
        return result

    def _check(self, node_id: str) -> tuple[bool, list[dict[str, Any]]]:
        node = self.prompt[node_id]
        class_type = node["class_type"]
        schema = self.info[class_type]
        inputs = node.get("inputs", {}) or {}
        errors: list[dict[str, Any]] = []
        valid = True
        self_checked = SELF_VALIDATED.get(class_type, frozenset())
        for name, spec in finalized_inputs(schema, inputs).items():
            if name not in inputs:
                if spec.required:  # V3 nodes name a dotted sub-input by its last part
                    errors.append(_entry("required_input_missing", "Required input is missing",
                                         name.split(".")[-1], input_name=name))
                continue
            value = inputs[name]
            if isinstance(value, list):
                link_problem = self._check_link(name, spec, value)
                if link_problem == "upstream":
                    valid = False
                elif isinstance(link_problem, dict):
                    errors.append(link_problem)
                continue
            if spec.type in DYNAMIC_TYPES or (spec.type not in SCALAR_TYPES and not spec.is_combo):
                continue  # a constant on a socket input: ComfyUI passes it through unchecked
            problem = self._check_value(name, spec, value, self_checked=name in self_checked or spec.is_upload
                                        or self_checked is ALL_INPUTS)
            if problem is not None:
                errors.append(problem)
        if class_type in self.custom:
            for input_name, details in self.custom[class_type](node_id, class_type, inputs):
                errors.append(_entry("custom_validation_failed", "Custom validation failed for node",
                                     f"{input_name} - {details}", input_name=input_name))
        return (valid and not errors), errors

    def _check_link(self, name: str, spec: InputSpec, value: list[Any]) -> dict[str, Any] | str | None:
        if len(value) != 2:
            return _entry("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                          name, input_name=name, input_config=spec.raw, received_value=value)
        source, slot = str(value[0]), value[1]
        # Real ComfyUI raises a KeyError/IndexError here and reports it as an exception during
        # validation of the output node; we name the node that holds the bad link instead.
        if source not in self.prompt:
            return _entry("exception_during_validation", "Exception when validating node",
                          f"{name}: linked node {source!r} is not in the prompt", input_name=name, linked_node=value)
        source_schema = self.info[self.prompt[source]["class_type"]]
        if not isinstance(slot, int) or isinstance(slot, bool) or not 0 <= slot < len(source_schema.outputs):
            return _entry("exception_during_validation", "Exception when validating node",
                          f"{name}: node {source} ({source_schema.class_type}) has no output {slot!r} "
                          f"(it has {len(source_schema.outputs)})", input_name=name, linked_node=value)
        received = source_schema.outputs[slot]
        legacy = isinstance(spec.raw, (list, tuple)) and spec.raw and isinstance(spec.raw[0], (list, tuple))
        if not types_match(received, list(spec.raw[0]) if legacy else spec.type):  # ComfyUI compares the list
            received_text = "COMBO" if isinstance(received, list) else received
            return _entry("return_type_mismatch", "Return type mismatch between linked nodes",
                          f"{name}, received_type({received_text}) mismatch input_type({spec.type})",
                          input_name=name, input_config=spec.raw, received_type=received_text, linked_node=value)
        if source in self.visiting:  # v0.26 reports cycles; the exact shape is not in the reference
            return _entry("dependency_cycle", "Dependency cycle detected",
                          f"{name}: node {source} depends on its own output", input_name=name, linked_node=value)
        upstream_ok, _ = self.node(source)
        return None if upstream_ok else "upstream"

    def _check_value(self, name: str, spec: InputSpec, value: Any, self_checked: bool) -> dict[str, Any] | None:
        if isinstance(value, Mapping) and "__value__" in value:
            value = value["__value__"]
        try:
            if spec.type == "INT":
                value = int(value)
            elif spec.type == "FLOAT":
                value = float(value)
            elif spec.type == "STRING":
                value = str(value)
            elif spec.type == "BOOLEAN":
                value = bool(value)
        except (TypeError, ValueError, OverflowError) as exc:
            return _entry("invalid_input_type", f"Failed to convert an input value to a {spec.type} value",
                          f"{name}, {value}, {exc}", input_name=name, input_config=spec.raw,
                          received_value=value, exception_message=str(exc))
        if self_checked:
            return None
        config = spec.config
        if "min" in config and _lt(value, config["min"]):
            return _entry("value_smaller_than_min", f"Value {value} smaller than min of {config['min']}", name,
                          input_name=name, input_config=spec.raw, received_value=value)
        if "max" in config and _lt(config["max"], value):
            return _entry("value_bigger_than_max", f"Value {value} bigger than max of {config['max']}", name,
                          input_name=name, input_config=spec.raw, received_value=value)
        if spec.is_combo:
            options = list(spec.options or ())
            values = value if config.get("multiselect") and isinstance(value, list) else [value]
            if any(v not in options for v in values):
                listing = f"(list of length {len(options)})" if len(options) > 20 else str(options)
                return _entry("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listing}",
                              input_name=name, input_config=None if len(options) > 20 else spec.raw,
                              received_value=value)
        return None


def _lt(a: Any, b: Any) -> bool:
    try:
        return a < b
    except TypeError:
        return False


def types_match(received: Any, wanted: Any) -> bool:
    """ComfyUI's ``comfy_execution.validation.validate_node_input`` (non-strict): equal, a ``*``
    wildcard on either side, a V3 MatchType on either side (its type is resolved by the frontend,
    so the server accepts it), a combo's option list into a ``COMBO`` input, or overlapping
    comma-separated type lists. ``*`` is a wildcard there through the ``__ne__`` of V3 types and
    of ``IO.ANY``; a V1 node's plain ``"*"`` string passes only with its own
    ``VALIDATE_INPUTS(input_types)``, which ``/object_info`` does not show, so it is accepted here."""
    if received == wanted or "*" in (received, wanted) or MATCH_TYPE in (received, wanted):
        return True
    if isinstance(received, list) and wanted == "COMBO":
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    got = {t.strip() for t in received.split(",")}
    need = {t.strip() for t in wanted.split(",")}
    return "*" in got or "*" in need or bool(got & need)


def finalized_inputs(schema: NodeSchema, inputs: Mapping[str, Any]) -> dict[str, InputSpec]:
    """The inputs ComfyUI validates a node against, given the prompt's inputs: V3 dynamic inputs
    expanded into dotted sub-inputs as ``comfy_api.latest._io.get_finalized_class_inputs`` does.
    An Autogrow is not an input itself but every name of its template is (the first ``min``
    required when the template entry is); a DynamicCombo whose value is one of its keys brings that
    option's inputs, while one that is absent or has an unknown value is no input at all (ComfyUI
    reports nothing for it); a DynamicSlot that is given brings its inputs."""
    found: dict[str, InputSpec] = {}
    _expand([(spec.name, spec.raw, spec.required) for spec in schema.inputs.values()], "", inputs, found)
    return found


def _sections(declared: Any) -> list[tuple[str, Any, bool]]:
    if not isinstance(declared, Mapping):
        return []
    return [(name, raw, section == "required") for section in ("required", "optional")
            for name, raw in (declared.get(section) or {}).items()]


def _expand(entries: list[tuple[str, Any, bool]], prefix: str, inputs: Mapping[str, Any],
            found: dict[str, InputSpec]) -> None:
    for name, raw, required in entries:
        path = prefix + name
        spec = parse_input(path, raw, required)
        if spec.type == AUTOGROW:
            template = spec.config.get("template") or {}
            entry = next(iter(_sections(template.get("input"))), None)
            if entry is None:
                continue
            names = template.get("names") or [f"{template.get('prefix', '')}{i}" for i in range(template.get("max", 0))]
            for index, sub in enumerate(names):
                found[f"{path}.{sub}"] = parse_input(f"{path}.{sub}", entry[1],
                                                     entry[2] and index < template.get("min", 0))
        elif spec.type == DYNAMIC_COMBO:
            value = inputs.get(path)
            option = next((o for o in spec.config.get("options") or []
                           if isinstance(o, Mapping) and isinstance(value, str) and o.get("key") == value), None)
            if option is not None:
                found[path] = spec
                _expand(_sections(option.get("inputs")), path + ".", inputs, found)
        elif spec.type == DYNAMIC_SLOT:
            if path in inputs:
                found[path] = spec
                _expand(_sections(spec.config.get("inputs")), path + ".", inputs, found)
        else:
            found[path] = spec


def check_prompt(
    prompt: Mapping[str, Any],
    info: ObjectInfo,
    partial_execution_targets: list[str] | None = None,
    custom_checks: Mapping[str, CustomCheck] | None = None,
) -> PromptCheck:
    """Validate an API-format prompt the way ``POST /prompt`` does (v0.26 shapes)."""
    outputs: list[str] = []
    for node_id, node in prompt.items():
        if not isinstance(node, Mapping) or "class_type" not in node:
            error = _entry("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                           f"Node ID '#{node_id}'")
            return PromptCheck(error, {}, [])
        class_type = node["class_type"]
        if class_type not in info:
            title = ((node.get("_meta") or {}).get("title")) or class_type
            error = _entry("missing_node_type", f"Node '{title}' not found. The custom node may not be installed.",
                           f"Node ID '#{node_id}'", node_id=node_id, class_type=class_type, node_title=title)
            return PromptCheck(error, {}, [])
        if info[class_type].output_node and (partial_execution_targets is None or node_id in partial_execution_targets):
            outputs.append(node_id)
    if not outputs:
        return PromptCheck(_entry("prompt_no_outputs", "Prompt has no outputs", ""), {}, [])
    validator = _Validator(prompt, info, custom_checks or {})
    good: list[str] = []
    failed: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, dict[str, Any]] = {}
    for output in outputs:
        valid, reasons = validator.node(output)
        if valid:
            good.append(output)
            continue
        if reasons:
            failed.append((output, reasons))
        for node_id, (node_valid, node_reasons) in validator.validated.items():
            if node_valid or not node_reasons:
                continue  # invalid only because of an upstream node: not listed (as in ComfyUI)
            entry = node_errors.setdefault(
                node_id, {"errors": node_reasons, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"]}
            )
            entry["dependent_outputs"].append(output)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, reasons in failed for e in reasons)
        error = _entry("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
        return PromptCheck(error, node_errors, [])
    return PromptCheck(None, node_errors, good)


def step_errors(prompt: Mapping[str, Any], info: ObjectInfo) -> list[WorkflowError]:
    """Integers off their widget's ``step`` grid. ComfyUI does not enforce ``step``, but models do
    care (Wan sizes on 16, lengths 4k+1), so the compiler holds itself to it."""
    found: list[WorkflowError] = []
    for node_id, node in prompt.items():
        schema = info.get(node.get("class_type", ""))
        if schema is None:
            continue
        for name, value in (node.get("inputs") or {}).items():
            spec = schema.inputs.get(name)
            # FLOAT steps are only the widget's granularity (23.976 fps is a fine CreateVideo fps).
            if spec is None or spec.type != "INT" or isinstance(value, (list, bool)) or not spec.config.get("step"):
                continue
            step = spec.config["step"]
            base = spec.config.get("min", 0)
            try:
                offset = (int(value) - base) / step
            except (TypeError, ValueError):
                continue
            if abs(offset - round(offset)) > 1e-6:
                entry = _entry("value_not_on_step", "Value not on step", name, input_name=name,
                               input_config=spec.raw, received_value=value, step=step, min=base)
                found.append(error_from_comfy(entry, node_id, schema.class_type))
    return found


def validate_workflow(
    prompt: Mapping[str, Any], info: ObjectInfo, *, instance: str | None = None, check_steps: bool = False
) -> list[WorkflowError]:
    """Every problem ComfyUI would report for this prompt (plus step problems when asked). Unlike
    ComfyUI, which stops at the first unknown class, every unknown class is listed."""
    unknown = [(node_id, node) for node_id, node in prompt.items()
               if isinstance(node, Mapping) and node.get("class_type") not in info]
    if unknown and all("class_type" in node for _, node in unknown):
        return [error_from_comfy(_entry("missing_node_type", "Node not found", f"Node ID '#{node_id}'",
                                        node_id=node_id, class_type=node["class_type"]), instance=instance)
                for node_id, node in unknown]
    found = check_prompt(prompt, info).errors(instance)
    if check_steps and not any(e.kind in ("missing_node_type", "invalid_prompt") for e in found):
        found += step_errors(prompt, info)
    return found


# ---------------------------------------------------------------------------------------------
# Model folders: which loader combos list the files of which ``models/<folder>``

MODEL_FOLDERS: dict[str, tuple[tuple[str, str], ...]] = {
    "checkpoints": (("CheckpointLoaderSimple", "ckpt_name"),),
    "diffusion_models": (("UNETLoader", "unet_name"),),
    "text_encoders": (("CLIPLoader", "clip_name"), ("DualCLIPLoader", "clip_name1"), ("DualCLIPLoader", "clip_name2")),
    "vae": (("VAELoader", "vae_name"),),
    "clip_vision": (("CLIPVisionLoader", "clip_name"),),
    "loras": (("LoraLoaderModelOnly", "lora_name"), ("LoraLoader", "lora_name")),
    "frame_interpolation": (("FrameInterpolationModelLoader", "model_name"),),
}


def folder_files(info: ObjectInfo, folder: str) -> list[str]:
    """The files of one model folder as the instance lists them in its loader combos."""
    names: set[str] = set()
    for class_type, input_name in MODEL_FOLDERS.get(folder, ()):
        names.update(v for v in info.combo(class_type, input_name) if looks_like_model_file(v))
    return sorted(names)


def with_model_files(document: Mapping[str, Any], files: Mapping[str, list[str]]) -> dict[str, Any]:
    """A copy of an ``/object_info`` document as if ``files`` (folder -> names) were on disk: each
    loader combo of that folder lists them too (both combo encodings)."""
    copy = json.loads(json.dumps(document))
    for folder, names in files.items():
        for class_type, input_name in MODEL_FOLDERS.get(folder, ()):
            node = copy.get(class_type)
            if node is None:
                continue
            for section in ("required", "optional"):
                spec = (node["input"].get(section) or {}).get(input_name)
                if spec is None:
                    continue
                options = spec[0] if isinstance(spec[0], list) else spec[1].setdefault("options", [])
                options.extend(n for n in names if n not in options)
                options.sort()
    return copy
