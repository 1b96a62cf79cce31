"""Every workflow of the official template package imports without crashing: each converts or is
refused naming what it uses that we do not support, and converted ones pass ComfyUI's validation
(the project's conformance check) against the real schemas: the newest dump that has every node
type the template uses, on an instance where the template's input files were uploaded.

Two releases of the package are checked. The current one (pinned in the test extras) has 600+
templates, many saved by ComfyUI versions newer than the v0.26 dump: their new combo values,
DynamicCombo options and output slots fail against v0.26 through no fault of the converter, so
its rate is a regression floor. The package's first release (0.1.0, 2026-06-27, four days after
ComfyUI 0.26.0) is the set of the dump's own era; the 95% target is measured on it.
`scripts/setup.sh --tests` installs it beside the venv's packages."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from reelgraph.comfy_workflows.schema import ObjectInfo, validate_workflow
from reelgraph.graphs.comfy_ui import (
    WorkflowRefused,
    combined_info,
    import_workflow,
    is_ui_format,
    pack_declarations,
    ui_to_api,
)
from reelgraph.graphs.errors import RecipeInvalid
from reelgraph.tests.comfy_server_fixtures import OLD, WITH_MODELS, raw_dump

UI_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode", "GetNode", "SetNode"}
DUMPS = [WITH_MODELS, OLD]  # newest first; the v0.26 dump without model files is the same server
DUMP_ERA_RELEASE = "0.1.0"  # keep in step with scripts/setup.sh


@dataclass(frozen=True)
class TemplateSet:
    label: str
    minimum_templates: int
    minimum_rate: float  # of the templates whose node types are all in a dump

    def directory(self) -> Path:
        if self.label == "current":
            package = pytest.importorskip(
                "comfyui_workflow_templates_json",
                reason="the official template package is not installed (scripts/setup.sh --tests installs it)")
            return Path(package.__file__).resolve().parent / "templates"
        folder = (Path(sys.prefix) / "template-sets" / f"comfyui-workflow-templates-json-{DUMP_ERA_RELEASE}"
                  / "comfyui_workflow_templates_json" / "templates")
        if not folder.is_dir():
            pytest.skip(f"comfyui-workflow-templates-json {DUMP_ERA_RELEASE} is not installed in {folder.parents[1]} "
                        "(scripts/setup.sh --tests installs it)")
        return folder

    def release(self) -> str:
        return version("comfyui-workflow-templates-json") if self.label == "current" else DUMP_ERA_RELEASE


TEMPLATE_SETS = [
    # 92.3% with v0.26: every failure is a template saved by a newer ComfyUI (or broken)
    TemplateSet("current", minimum_templates=600, minimum_rate=0.92),
    TemplateSet("dump era", minimum_templates=450, minimum_rate=0.95),  # the target
]


def workflows(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.json") if is_ui_format(json.loads(p.read_text(encoding="utf-8"))))


def node_types(workflow: dict) -> set[str]:
    subgraphs = (workflow.get("definitions") or {}).get("subgraphs") or []
    ids = {s["id"] for s in subgraphs}
    nodes = list(workflow["nodes"]) + [n for s in subgraphs for n in s["nodes"]]
    return {n["type"] for n in nodes} - ids - UI_ONLY


def ui_node(workflow: dict, prompt_id: str) -> dict | None:
    """The UI node behind a prompt id ("<instance>:<inner>", nested as needed)."""
    definitions = {s["id"]: s for s in (workflow.get("definitions") or {}).get("subgraphs") or []}
    graph: dict | None = workflow
    node = None
    for part in prompt_id.split(":"):
        node = next((n for n in (graph or {}).get("nodes", []) if str(n["id"]) == part), None)
        graph = definitions.get(node["type"]) if node else None
    return node


def newer_widget_names(workflow: dict, class_type: str, info) -> bool:
    """Whether the template saved, for this class, widget names that v0.26's schema does not have
    (``widgets_values_named``): the node comes from a newer ComfyUI."""
    subgraphs = (workflow.get("definitions") or {}).get("subgraphs") or []
    known = set(info[class_type].inputs) | {"control_after_generate", "upload"}
    return any({name for name in n.get("widgets_values_named") or {} if "." not in name} - known
               for n in list(workflow["nodes"]) + [n for s in subgraphs for n in s["nodes"]]
               if n["type"] == class_type)


def unknown_dynamic_option(prompt: dict, info) -> str | None:
    """A V3 DynamicCombo value that is none of the v0.26 node's keys (ComfyUI ignores such an
    input, and the widgets saved after it belong to options v0.26 does not know)."""
    for node in prompt.values():
        for name, spec in info[node["class_type"]].inputs.items():
            keys = [o.get("key") for o in spec.config.get("options") or [] if isinstance(o, dict)]
            if spec.type == "COMFY_DYNAMICCOMBO_V3" and name in node["inputs"] and node["inputs"][name] not in keys:
                return f"{node['class_type']}.{name} = {node['inputs'].get(name)!r}"
    return None


def newest_dump(workflow: dict) -> str | None:
    """The newest dump that has every node type the template uses."""
    return next((name for name in DUMPS if node_types(workflow) <= set(raw_dump(name))), None)


def with_uploaded_inputs(document: dict, prompt: dict) -> dict:
    """The instance after the template's input files were uploaded, as a template's user does: a
    combo with an upload flag lists the files of ComfyUI's input folder, so it also lists the
    files the prompt names. (LoadImage and the other loaders check the file in their own
    VALIDATE_INPUTS, which the conformance check cannot see; Load3D's combo is checked.)"""
    info = ObjectInfo({name: document[name] for name in {n["class_type"] for n in prompt.values()} if name in document})
    added: dict[str, dict[str, set]] = {}
    for node in prompt.values():
        schema = info.get(node["class_type"])
        for name, value in node["inputs"].items():
            spec = schema.inputs.get(name) if schema else None
            uploads = spec is not None and spec.is_combo and any(k.endswith("upload") and v for k, v in spec.config.items())
            if uploads and isinstance(value, str) and value not in spec.options:
                added.setdefault(node["class_type"], {}).setdefault(name, set()).add(value)
    if not added:
        return document
    copy = dict(document)
    for class_type, inputs in added.items():
        entry = json.loads(json.dumps(document[class_type]))
        for section in entry["input"].values():
            for name, files in inputs.items():
                if isinstance(section, dict) and name in section:
                    spec = section[name]
                    options = spec[0] if isinstance(spec[0], list) else spec[1].setdefault("options", [])
                    options.extend(sorted(files))
        copy[class_type] = entry
    return copy


def failure_reason(workflow: dict, prompt: dict, errors: list, info) -> tuple[str, str]:
    """Why a template fails ComfyUI's validation, and the telling detail. Every reason here is
    the template's (saved by a newer ComfyUI than the dump, or broken), not the converter's."""
    if [e.kind for e in errors] == ["prompt_no_outputs"]:
        return "no output node anywhere in the template (ComfyUI answers prompt_no_outputs)", str(errors[0])
    for e in errors:
        if e.kind == "exception_during_validation" and "has no output" in e.cause:
            return "links an output the node does not have (saved by a newer ComfyUI)", str(e)
    if option := unknown_dynamic_option(prompt, info):
        # with widgets_values_named the values would be restored by name (and pass); without it
        # the values after the unknown option's are positional, as the frontend reads them
        return "a V3 dynamic-combo option the dump lacks, no named values saved (newer ComfyUI)", option
    for e in errors:
        if e.kind != "value_not_in_list":
            continue
        named = (ui_node(workflow, e.node_id) or {}).get("widgets_values_named")
        if named is None or named.get(e.input_name) == e.comfy["extra_info"]["received_value"]:
            return "a combo option v0.26 does not have (newer ComfyUI)", str(e)  # the template's own value
    for e in errors:
        if e.kind == "invalid_input_type" and newer_widget_names(workflow, e.class_type, info):
            return "widget values of a newer version of the node", str(e)
    if errors and all(e.kind == "required_input_missing" and any(
            slot.get("name") == e.input_name and slot.get("link") is not None
            for slot in (ui_node(workflow, e.node_id) or {}).get("inputs") or []) for e in errors):
        return "a linked input whose link leads nowhere in the template", str(errors[0])
    if errors and all(e.kind == "required_input_missing" and info[e.class_type].output_node and any(
            slot.get("name") == e.input_name and slot.get("link") is None
            for slot in (ui_node(workflow, e.node_id) or {}).get("inputs") or []) for e in errors):
        # ComfyUI runs the template's other outputs and lists this one in node_errors
        return "an output node the template left unconnected", str(errors[0])
    return "other", "; ".join(map(str, errors))


@pytest.mark.parametrize("templates", TEMPLATE_SETS, ids=lambda t: t.label.replace(" ", "-"))
def test_every_official_template_converts_or_is_refused_by_name(templates: TemplateSet, capsys):
    paths = workflows(templates.directory())
    declarations = pack_declarations()
    infos = {name: combined_info(raw_dump(name), declarations) for name in DUMPS}
    assert len(paths) >= templates.minimum_templates
    counts: Counter[str] = Counter()
    reasons: dict[str, list[str]] = {}
    for path in paths:
        workflow = json.loads(path.read_text(encoding="utf-8"))
        chosen = newest_dump(workflow)
        dump = raw_dump(chosen or DUMPS[0])
        info = infos[chosen or DUMPS[0]]
        try:
            prompt = ui_to_api(workflow, info)
        except WorkflowRefused as refused:
            counts["refused"] += 1
            assert refused.problems and all(("node type" in p and "object_info" in p) or "not supported" in p
                                            or "subgraph" in p for p in refused.problems), path.name
            assert not chosen or all("not in the object_info" not in p for p in refused.problems), path.name
            with pytest.raises(RecipeInvalid):  # the command line refuses it the same way
                import_workflow(workflow, dump, None)
            continue
        counts["converted"] += 1
        recipe = import_workflow(workflow, dump, None, name=path.stem)  # and it becomes a recipe
        assert len(recipe.nodes) == len(prompt)
        if not chosen:
            continue
        counts["known"] += 1
        counts[f"checked against {chosen}"] += 1
        uploaded = with_uploaded_inputs(dump, prompt)
        checked = info if uploaded is dump else combined_info(uploaded, declarations)
        errors = validate_workflow(prompt, checked)
        if not errors:
            counts["pass"] += 1
        else:
            reason, detail = failure_reason(workflow, prompt, errors, checked)
            reasons.setdefault(reason, []).append(f"{path.stem}: {detail}")
    with_subgraphs = sum(1 for p in paths if (json.loads(p.read_text()).get("definitions") or {}).get("subgraphs"))
    rate = counts["pass"] / counts["known"]
    with capsys.disabled():
        print(f"\nofficial templates ({templates.label}, {templates.release()}): "
              f"{len(paths)} UI workflows ({with_subgraphs} with subgraphs); "
              f"{counts['converted']} converted, {counts['refused']} refused (node types not in any dump); "
              f"of {counts['known']} whose node types are all in a dump "
              f"({', '.join(f'{v} {k}' for k, v in counts.items() if k.startswith('checked'))}), "
              f"{counts['pass']} pass the conformance check ({rate:.1%}); failures by reason:")
        for reason, failures in sorted(reasons.items(), key=lambda item: -len(item[1])):
            print(f"  {len(failures):3d}  {reason}\n         e.g. {failures[0][:150]}")
    assert counts["converted"] + counts["refused"] == len(paths)
    assert not reasons.get("other"), reasons.get("other")  # a failure no template fault explains is ours
    assert rate >= templates.minimum_rate, reasons
