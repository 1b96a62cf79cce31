"""UI-format workflows: import (0.4 and 1.0, subgraphs, reroutes, primitives, bypass/mute, widgets),
export with a generated layout, and lossless round trips."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reelgraph.comfy_workflows.compiler import (
    Interpolation,
    StillParams,
    VideoOutput,
    VideoParams,
    compile_still,
    compile_video,
)
from reelgraph.comfy_workflows.schema import ObjectInfo, validate_workflow
from reelgraph.graphs.comfy_api import SAVERS
from reelgraph.engine import RunOptions
from reelgraph.graphs.comfy_api import recipe_from_api, recipe_to_api
from reelgraph.graphs.comfy_ui import (
    WorkflowRefused,
    combined_info,
    export_ui,
    import_workflow,
    pack_declarations,
    recipe_from_ui,
    recipe_to_ui,
    ui_to_api,
)
from reelgraph.graphs.errors import RecipeInvalid
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline import NODE_TYPES as PIPELINE_TYPES
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.tests.comfy_server_fixtures import (
    OLD,
    WITH_MODELS,
    full_instance,
    full_instance_file,
    raw_dump,
)
from reelgraph.tests.helpers import TEMPLATES, executed

REGISTRY = NodeRegistry([*BUILTIN_TYPES, *PIPELINE_TYPES])
DECLARATIONS = pack_declarations(REGISTRY)
PACK_INFO = combined_info(None, DECLARATIONS)


def same(a: Any, b: Any) -> bool:
    return a.model_dump(mode="json") == b.model_dump(mode="json")


def boxes_overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    (ax, ay), (aw, ah) = a["pos"], a["size"]
    (bx, by), (bw, bh) = b["pos"], b["size"]
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def assert_well_formed(ui: dict[str, Any]) -> None:
    """Every link is recorded on both ends, no two nodes overlap, every node sits in its group."""
    nodes = {n["id"]: n for n in ui["nodes"]}
    for link_id, origin, origin_slot, target, target_slot, kind in ui["links"]:
        assert link_id in nodes[origin]["outputs"][origin_slot]["links"]
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
        assert nodes[origin]["outputs"][origin_slot]["type"] == kind
    for node in ui["nodes"]:
        for entry in node["inputs"]:
            assert entry["link"] is None or any(link[0] == entry["link"] for link in ui["links"])
    listed = list(nodes.values())
    for i, a in enumerate(listed):
        for b in listed[i + 1:]:
            assert not boxes_overlap(a, b), (a["id"], b["id"])
    for node in listed:
        x, y = node["pos"]
        assert any(g["bounding"][0] <= x and x + node["size"][0] <= g["bounding"][0] + g["bounding"][2]
                   and g["bounding"][1] <= y and y + node["size"][1] <= g["bounding"][1] + g["bounding"][3]
                   for g in ui["groups"]), node["id"]
    inner_links = sum(len(d["links"]) for d in (ui.get("definitions") or {}).get("subgraphs", []))
    assert ui["version"] == 0.4 and ui["last_link_id"] == len(ui["links"]) + inner_links


# ---------------------------------------------------------------------------------------------
# recipe -> UI -> recipe


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.json")))
def test_bundled_templates_round_trip(template):
    recipe = parse_recipe((TEMPLATES / template).read_bytes())
    ui = recipe_to_ui(recipe, PACK_INFO, DECLARATIONS)
    assert_well_formed(ui)
    assert same(recipe_from_ui(json.loads(json.dumps(ui)), PACK_INFO, DECLARATIONS), recipe)
    links = sum(isinstance(v, dict) and ("link" in v or "param" in v)
                for node in json.loads((TEMPLATES / template).read_text())["nodes"].values() for v in node["inputs"].values())
    assert len(ui["links"]) == links + len(recipe.outputs)
    assert len(ui["nodes"]) == len(recipe.nodes) + len(recipe.params) + len(recipe.outputs)


def test_exported_layout_reads_left_to_right():
    recipe = parse_recipe((TEMPLATES / "explainer.json").read_bytes())
    ui = recipe_to_ui(recipe, PACK_INFO, DECLARATIONS)
    nodes = {n["id"]: n for n in ui["nodes"]}
    for _, origin, _, target, _, _ in ui["links"]:
        assert nodes[origin]["pos"][0] + nodes[origin]["size"][0] < nodes[target]["pos"][0]
    params = [n for n in ui["nodes"] if n["type"].startswith("reelgraph.recipe_param.")]
    assert {n["title"] for n in params} == set(recipe.params)
    topic = next(n for n in params if n["title"] == "topic")
    assert topic["widgets_values"][:2] == [recipe.params["topic"].default, recipe.params["topic"].description]
    assert [g["title"] for g in ui["groups"]][0] == "Parameters" and ui["groups"][-1]["title"] == "Outputs"
    script = next(n for n in ui["nodes"] if n.get("title") == "script")
    assert script["type"] == "reelgraph.script.llm" and script["properties"]["reelgraph"]["id"] == "script"


KINDS = {"string": st.text(max_size=8), "integer": st.integers(-10**6, 10**6), "number": st.floats(-1e6, 1e6),
         "boolean": st.booleans()}
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-99, 99) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                           max_leaves=6)
SCALAR_TYPES = [t for t in REGISTRY.ids() if all(p.type in (*KINDS, "json") for p in REGISTRY.get(t).inputs)]


@st.composite
def random_recipes(draw: Any) -> dict[str, Any]:
    """Recipes of built-in types with literal, linked and parameter inputs, params, outputs, nonces, meta."""
    params: dict[str, Any] = {}
    for index in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from([*KINDS, "json"]))
        spec: dict[str, Any] = {"type": kind, "description": draw(st.text(max_size=10))}
        if draw(st.booleans()):
            spec["default"] = draw(KINDS[kind] if kind in KINDS else JSON_VALUES)
        if kind == "integer" and draw(st.booleans()):
            spec.update(minimum=-(10**7), maximum=10**7)
        params[f"p{index}"] = spec
    nodes: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 6))):
        node_type = REGISTRY.get(draw(st.sampled_from(SCALAR_TYPES)))
        inputs: dict[str, Any] = {}
        for port in node_type.inputs:
            if port.optional and draw(st.booleans()):
                continue
            sources = [(n, o.name) for n, spec in nodes.items() for o in REGISTRY.get(spec["type"]).outputs
                       if o.type == port.type or port.type == "json"]
            fitting = [name for name, p in params.items() if p["type"] == port.type and not port.is_list]
            choice = draw(st.integers(0, 2))
            if choice == 1 and sources:
                inputs[port.name] = {"link": list(draw(st.sampled_from(sources)))}
            elif choice == 2 and fitting:
                inputs[port.name] = {"param": draw(st.sampled_from(fitting))}
            elif port.is_list:
                inputs[port.name] = draw(st.lists(KINDS.get(port.type, JSON_VALUES), max_size=3))
            elif port.type == "json":
                value = draw(JSON_VALUES)
                inputs[port.name] = {"literal": value} if isinstance(value, dict) or draw(st.booleans()) else value
            else:
                inputs[port.name] = draw(KINDS[port.type])
        node: dict[str, Any] = {"type": node_type.id, "inputs": inputs}
        if draw(st.booleans()):
            node["nonce"] = draw(st.integers(0, 5))
        if draw(st.booleans()):
            node["meta"] = {"note": draw(st.text(max_size=6))}
        nodes[draw(st.sampled_from([f"n{index}", f"{index + 1}", f"scene {index}"]))] = node
    outputs = {f"out{i}": {"link": [n, REGISTRY.get(spec["type"]).outputs[0].name]}
               for i, (n, spec) in enumerate(nodes.items()) if draw(st.booleans())}
    return {"name": draw(st.text(min_size=1, max_size=8)), "description": draw(st.text(max_size=8)),
            "params": params, "nodes": nodes, "outputs": outputs, "meta": {"k": draw(st.integers())}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_recipes())
def test_random_recipes_round_trip_through_ui(document):
    recipe = parse_recipe(document)
    ui = recipe_to_ui(recipe, PACK_INFO, DECLARATIONS)
    assert_well_formed(ui)
    again = recipe_from_ui(json.loads(json.dumps(ui)), PACK_INFO, DECLARATIONS)
    assert same(again, recipe)
    assert recipe_to_ui(again, PACK_INFO, DECLARATIONS) == ui  # and the export is stable


# ---------------------------------------------------------------------------------------------
# ComfyUI-only graphs: API -> recipe -> UI -> recipe -> API is the identity


def compiled_workflows(info: ObjectInfo) -> list[dict[str, Any]]:
    prompts = []
    for model, interpolation, output in [
        ("wan2.2-14b-i2v", Interpolation(2, method="rife"), VideoOutput(node="vhs")),
        ("wan2.2-14b-t2v-4step", Interpolation(2, method="core"), VideoOutput(node="savevideo")),
        ("hunyuan-i2v", None, VideoOutput(node="savevideo")),
        ("wan2.2-5b", None, VideoOutput(node="vhs")),
    ]:
        image = "jobs/run/start.png" if model in ("wan2.2-14b-i2v", "hunyuan-i2v") else None
        params = VideoParams(model, "a lighthouse", seed=123456789012, seconds=1.0, image=image)
        prompts.append(compile_video(params, info, recipe_node="scene", instance="gpu", interpolation=interpolation,
                                     output=output).prompt)
    prompts.append(compile_still(StillParams("sdxl", "a red fox", seed=5), info, recipe_node="still", instance="gpu").prompt)
    return prompts


def test_api_workflows_survive_the_ui_unchanged():
    info = full_instance(WITH_MODELS)
    combined = combined_info(info.raw, DECLARATIONS)
    for prompt in compiled_workflows(info):
        recipe = import_workflow(prompt, None, REGISTRY, name="wf")
        assert recipe_to_api(recipe) == prompt  # API -> recipe -> API
        ui = recipe_to_ui(recipe, combined, DECLARATIONS)
        assert_well_formed(ui)
        assert all("reelgraph" not in n["properties"] or "widgets" not in n["properties"]["reelgraph"] for n in ui["nodes"])
        again = recipe_from_ui(json.loads(json.dumps(ui)), combined, DECLARATIONS, name="wf")
        assert same(again, recipe)
        assert recipe_to_api(again) == prompt
        # what ComfyUI's frontend would queue from the exported canvas is the same prompt, plus one
        # recipe output node per saver (import names what the workflow saves as the recipe's outputs)
        queued = ui_to_api(ui, combined)
        outputs = {k: v for k, v in queued.items() if v["class_type"] == "reelgraph.recipe_output"}
        assert len(outputs) == len(recipe.outputs) == len([n for n in prompt.values() if n["class_type"] in SAVERS])
        queued = {k: v for k, v in queued.items() if k not in outputs}
        assert set(queued) == set(prompt)
        for node_id, node in queued.items():
            assert node["class_type"] == prompt[node_id]["class_type"]
            given = prompt[node_id]["inputs"]
            assert {k: v for k, v in node["inputs"].items() if k in given} == given
            schema = info[node["class_type"]]
            for name in set(node["inputs"]) - set(given):  # the frontend also sends optional widgets
                assert not schema.inputs[name].required and node["inputs"][name] == schema.inputs[name].default()
        assert validate_workflow(queued, info) == []


def test_seed_widgets_get_a_fixed_control_value():
    info = full_instance(WITH_MODELS)
    prompt = compile_still(StillParams("sdxl", "a red fox", seed=5), info, recipe_node="still", instance="gpu").prompt
    ui = export_ui(recipe_from_api(prompt), info.raw, REGISTRY)
    sampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    inputs = prompt[str(sampler["id"])]["inputs"]
    assert sampler["widgets_values"] == [5, "fixed", inputs["steps"], inputs["cfg"], inputs["sampler_name"],
                                         inputs["scheduler"], inputs["denoise"]]


def test_comfy_nodes_without_a_schema_keep_their_widgets_by_name():
    prompt = {"1": {"class_type": "SomePackNode", "inputs": {"b": 2, "a": "x"}, "_meta": {"title": "mine"}},
              "2": {"class_type": "OtherNode", "inputs": {"src": ["1", 1], "flag": True}}}
    recipe = recipe_from_api(prompt)
    ui = recipe_to_ui(recipe, PACK_INFO, DECLARATIONS)
    assert_well_formed(ui)
    again = recipe_from_ui(json.loads(json.dumps(ui)), PACK_INFO, DECLARATIONS)
    assert same(again, recipe) and recipe_to_api(again) == prompt


# ---------------------------------------------------------------------------------------------
# Importing what ComfyUI saves

MINIMAL = {  # reference §3.4: node 2 is bypassed, the Note is dropped
    "id": "2f1d6c8e-2b7a-4c1e-9a59-0f4b7a1e3d10", "revision": 0, "last_node_id": 4, "last_link_id": 3,
    "nodes": [
        {"id": 1, "type": "LoadImage", "pos": [0, 0], "size": [315, 314], "flags": {}, "order": 0, "mode": 0, "inputs": [],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}, {"name": "MASK", "type": "MASK", "links": None}],
         "properties": {"Node name for S&R": "LoadImage", "cnr_id": "comfy-core"}, "widgets_values": ["start.png", "image"]},
        {"id": 2, "type": "ImageScaleBy", "pos": [350, 0], "size": [270, 82], "flags": {}, "order": 1, "mode": 4,
         "inputs": [{"name": "image", "type": "IMAGE", "link": 1}], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}],
         "properties": {"Node name for S&R": "ImageScaleBy"}, "widgets_values": ["nearest-exact", 2.0]},
        {"id": 3, "type": "SaveImage", "pos": [650, 0], "size": [315, 270], "flags": {}, "order": 2, "mode": 0,
         "inputs": [{"name": "images", "type": "IMAGE", "link": 2}], "outputs": [],
         "properties": {"Node name for S&R": "SaveImage"}, "widgets_values": ["jobs/demo/img"], "title": "Save result"},
        {"id": 4, "type": "Note", "pos": [0, 350], "size": [300, 80], "flags": {}, "order": 3, "mode": 0,
         "inputs": [], "outputs": [], "properties": {}, "widgets_values": ["UI-only note"]}],
    "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
    "groups": [], "config": {}, "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}}, "version": 0.4}


def info26() -> ObjectInfo:
    return combined_info(raw_dump(WITH_MODELS), DECLARATIONS)


def test_reference_example_converts_like_the_frontend():
    assert ui_to_api(MINIMAL, info26()) == {
        "1": {"inputs": {"image": "start.png"}, "class_type": "LoadImage"},
        "3": {"inputs": {"filename_prefix": "jobs/demo/img", "images": ["1", 0]}, "class_type": "SaveImage",
              "_meta": {"title": "Save result"}},
    }


def sampler_graph() -> dict[str, Any]:
    """A KSampler graph with a reroute, a legacy primitive driving a converted widget, a muted
    node and a seed with its control_after_generate value."""
    info = full_instance(WITH_MODELS)
    prompt = compile_still(StillParams("sdxl", "a red fox", seed=5), info, recipe_node="s", instance="gpu").prompt
    ui = export_ui(recipe_from_api(prompt), info.raw, REGISTRY)
    nodes = {n["id"]: n for n in ui["nodes"]}
    sampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][1] = "randomize"
    # the model link now goes through a reroute
    model_entry = next(i for i in sampler["inputs"] if i["name"] == "model")
    link = next(link for link in ui["links"] if link[0] == model_entry["link"])
    reroute = {"id": 100, "type": "Reroute", "pos": [0, 0], "size": [75, 26], "mode": 0,
               "inputs": [{"name": "", "type": "*", "link": 900}],
               "outputs": [{"name": "", "type": "MODEL", "links": [link[0]]}], "properties": {}}
    ui["links"].append([900, link[1], link[2], 100, 0, "MODEL"])
    nodes[link[1]]["outputs"][link[2]]["links"] = [900]
    link[1], link[2] = 100, 0
    # steps is driven by a legacy PrimitiveNode
    primitive = {"id": 101, "type": "PrimitiveNode", "mode": 0, "inputs": [], "pos": [0, 0], "size": [1, 1],
                 "outputs": [{"name": "INT", "type": "INT", "links": [901], "widget": {"name": "steps"}}],
                 "widgets_values": [33, "fixed"], "properties": {"Run widget replace on values": False}}
    steps = next(i for i in sampler["inputs"] if i["name"] == "steps")
    steps["link"] = 901
    ui["links"].append([901, 101, 0, sampler["id"], sampler["inputs"].index(steps), "INT"])
    # a muted preview hanging off the decoder
    muted = {"id": 102, "type": "PreviewImage", "mode": 2, "inputs": [{"name": "images", "type": "IMAGE", "link": None}],
             "outputs": [], "pos": [0, 0], "size": [1, 1], "properties": {}, "widgets_values": []}
    ui["nodes"] += [reroute, primitive, muted]
    return ui


def test_reroutes_primitives_mutes_and_seed_controls():
    ui = sampler_graph()
    prompt = ui_to_api(ui, info26())
    sampler = next(n for n in prompt.values() if n["class_type"] == "KSampler")
    assert sampler["inputs"]["seed"] == 5 and sampler["inputs"]["steps"] == 33
    loader = next(k for k, n in prompt.items() if n["class_type"] == "CheckpointLoaderSimple")
    assert sampler["inputs"]["model"] == [loader, 0]
    assert {n["class_type"] for n in prompt.values()} >= {"KSampler", "SaveImage"}
    assert "PreviewImage" not in {n["class_type"] for n in prompt.values()}
    assert validate_workflow(prompt, info26()) == []


def test_schema_1_links_and_subgraphs_flatten():
    """The sampler graph moved into a subgraph (schema 1.0 links), its seed promoted to the instance."""
    ui = sampler_graph()
    inner_nodes = [n for n in ui["nodes"] if n["type"] not in ("SaveImage",)]
    save = next(n for n in ui["nodes"] if n["type"] == "SaveImage")
    decode_link = next(link for link in ui["links"] if link[3] == save["id"])
    sampler = next(n for n in inner_nodes if n["type"] == "KSampler")
    seed_entry = {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 950}
    sampler["inputs"].append(seed_entry)
    inner_links = [dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), link))
                   for link in ui["links"] if link[0] != decode_link[0]]
    inner_links.append({"id": 950, "origin_id": -10, "origin_slot": 0, "target_id": sampler["id"],
                        "target_slot": len(sampler["inputs"]) - 1, "type": "INT"})
    inner_links.append({"id": 951, "origin_id": decode_link[1], "origin_slot": decode_link[2], "target_id": -20,
                        "target_slot": 0, "type": "IMAGE"})
    definition = {"id": "84e2cf3f-de93-40ef-ab22-b9375296917b", "version": 1, "revision": 0, "name": "Still",
                  "state": {}, "config": {}, "inputNode": {"id": -10}, "outputNode": {"id": -20},
                  "inputs": [{"id": "a", "name": "seed", "type": "INT", "linkIds": [950]}],
                  "outputs": [{"id": "b", "name": "IMAGE", "type": "IMAGE", "linkIds": [951]}],
                  "widgets": [], "nodes": inner_nodes, "links": inner_links, "groups": [], "extra": {}}
    instance = {"id": 70, "type": definition["id"], "mode": 0, "pos": [0, 0], "size": [1, 1],
                "inputs": [{"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": None}],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "properties": {}, "widgets_values": [4242]}
    save["inputs"][0]["link"] = 1
    workflow = {"version": 1, "state": {"lastNodeId": 70, "lastLinkId": 1}, "nodes": [instance, save],
                "links": [{"id": 1, "origin_id": 70, "origin_slot": 0, "target_id": save["id"], "target_slot": 0, "type": "IMAGE"}],
                "definitions": {"subgraphs": [definition]}, "extra": {}}
    prompt = ui_to_api(workflow, info26())
    sampler_id, sampler_node = next((k, n) for k, n in prompt.items() if n["class_type"] == "KSampler")
    assert sampler_id.startswith("70:") and sampler_node["inputs"]["seed"] == 4242
    decoder = next(k for k, n in prompt.items() if n["class_type"] == "VAEDecode")
    assert prompt[str(save["id"])]["inputs"]["images"] == [decoder, 0] and decoder.startswith("70:")
    assert validate_workflow(prompt, info26()) == []
    recipe = import_workflow(workflow, raw_dump(WITH_MODELS), REGISTRY)
    assert recipe_to_api(recipe)[sampler_id]["inputs"]["seed"] == 4242
    # a muted instance is dropped with its inner nodes
    workflow["nodes"][0]["mode"] = 2
    assert all(not k.startswith("70:") for k in ui_to_api(workflow, info26()))


def test_dict_widget_values_and_dynamic_combos():
    vhs = {"id": 1, "type": "VHS_VideoCombine", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": None}],
           "outputs": [], "properties": {},
           "widgets_values": {"frame_rate": 16, "loop_count": 0, "filename_prefix": "x", "format": "video/h264-mp4",
                              "pix_fmt": "yuv420p", "crf": 19, "save_metadata": True, "pingpong": False,
                              "save_output": True, "videopreview": {"hidden": False}}}
    resize = {"id": 2, "type": "ResizeImageMaskNode", "mode": 0, "properties": {},
              "inputs": [{"name": "input", "type": "IMAGE,MASK", "link": None}], "outputs": [],
              "widgets_values": ["scale by multiplier", 1.5, "area"]}
    prompt = ui_to_api({"nodes": [vhs, resize], "links": []}, info26())
    assert prompt["1"]["inputs"]["crf"] == 19 and "videopreview" not in prompt["1"]["inputs"]
    assert prompt["2"]["inputs"] == {"resize_type": "scale by multiplier", "resize_type.multiplier": 1.5,
                                     "scale_method": "area"}


def promoted_graph(values: list[Any], proxy: list[list[str]] | None = None) -> dict[str, Any]:
    """A subgraph whose inputs are: ``text`` (STRING, only feeds a socket, so never promoted, and
    linked from outside), ``width`` (feeds a PreviewAny socket first, then a latent's widget),
    ``seed`` (a widget with control_after_generate) and ``height`` (a widget)."""
    def slot(name: str, link: int, widget: bool = True) -> dict[str, Any]:
        return {"name": name, "type": "INT", "link": link, **({"widget": {"name": name}} if widget else {})}

    inner = [
        {"id": 1, "type": "EmptyLatentImage", "mode": 0, "inputs": [slot("width", 12), slot("height", 15)],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}], "widgets_values": [1024, 768, 1]},
        {"id": 2, "type": "PreviewAny", "mode": 0, "inputs": [{"name": "source", "type": "*", "link": 13}],
         "outputs": [], "widgets_values": [None, None, None]},
        {"id": 3, "type": "PreviewAny", "mode": 0, "inputs": [{"name": "source", "type": "*", "link": 11}],
         "outputs": [], "widgets_values": [None, None, None]},
        {"id": 4, "type": "RandomNoise", "mode": 0, "inputs": [slot("noise_seed", 14)],
         "outputs": [{"name": "NOISE", "type": "NOISE", "links": []}], "widgets_values": [3, "randomize"]},
    ]
    links = [(11, 0, 3, 0, "STRING"), (12, 1, 1, 0, "INT"), (13, 1, 2, 0, "INT"), (14, 2, 4, 0, "INT"), (15, 3, 1, 1, "INT")]
    definition = {
        "id": "5b1f7c9e-0d3a-4c21-9e8f-2a6b4d0c7e11", "version": 1, "name": "promotion", "state": {}, "config": {},
        "inputNode": {"id": -10}, "outputNode": {"id": -20},
        "inputs": [{"id": "t", "name": "text", "type": "STRING", "linkIds": [11]},
                   {"id": "w", "name": "width", "type": "INT", "linkIds": [13, 12]},
                   {"id": "s", "name": "seed", "type": "INT", "linkIds": [14]},
                   {"id": "h", "name": "height", "type": "INT", "linkIds": [15]}],
        "outputs": [], "widgets": [], "nodes": inner, "groups": [], "extra": {},
        "links": [{"id": i, "origin_id": -10, "origin_slot": o, "target_id": t, "target_slot": ts, "type": k}
                  for i, o, t, ts, k in links]}
    instance = {"id": 20, "type": definition["id"], "mode": 0, "outputs": [],
                "inputs": [{"name": "text", "type": "STRING", "link": 1}], "widgets_values": values,
                "properties": {"proxyWidgets": proxy} if proxy else {}}
    text = {"id": 10, "type": "PrimitiveString", "mode": 0, "inputs": [],
            "outputs": [{"name": "STRING", "type": "STRING", "links": [1]}], "widgets_values": ["hello"]}
    return {"nodes": [text, instance], "links": [[1, 10, 0, 20, 0, "STRING"]], "definitions": {"subgraphs": [definition]}}


def test_promoted_subgraph_widgets_follow_the_frontend():
    """SubgraphNode: only inputs that end on an inner widget are promoted; the instance's values
    fill them in order, skipping the control_after_generate value a longer list carries; a
    socket fed by a promoted input without an outer link gets the promoted widget's value,
    which is the inner widget's own when the instance holds none or null (proxyWidgets files)."""
    prompt = ui_to_api(promoted_graph([640, 7, "fixed", 480]), info26())
    assert prompt["20:1"]["inputs"] == {"width": 640, "height": 480, "batch_size": 1}
    assert prompt["20:4"]["inputs"] == {"noise_seed": 7}
    assert prompt["20:2"]["inputs"] == {"source": 640} and prompt["20:3"]["inputs"] == {"source": ["10", 0]}
    assert validate_workflow(prompt, info26()) == []
    proxied = ui_to_api(promoted_graph([], [["1", "width"], ["4", "noise_seed"], ["1", "height"]]), info26())
    assert proxied["20:2"]["inputs"] == {"source": 1024} and proxied["20:4"]["inputs"] == {"noise_seed": 3}
    assert proxied["20:1"]["inputs"] == {"width": 1024, "height": 768, "batch_size": 1}
    # a promoted widget saved as null holds no value of its own: the inner widget's value runs
    # (the frontend skips nulls when it configures promoted widgets)
    nulls = ui_to_api(promoted_graph([None, 9], [["4", "noise_seed"], ["1", "height"]]), info26())
    assert nulls["20:4"]["inputs"] == {"noise_seed": 3} and nulls["20:1"]["inputs"]["height"] == 9
    assert validate_workflow(nulls, info26()) == []


def test_a_missing_dynamic_combo_gets_its_first_option():
    """The frontend builds a DynamicCombo as a combo of its keys, so a node saved before the input
    existed gets the first key, and that option's widgets with their defaults."""
    resize = {"id": 1, "type": "ResizeImageMaskNode", "mode": 0, "properties": {},
              "inputs": [{"name": "input", "type": "IMAGE,MASK", "link": None}], "outputs": [], "widgets_values": []}
    inputs = ui_to_api({"nodes": [resize], "links": []}, info26())["1"]["inputs"]
    assert inputs["resize_type"] == "scale dimensions"
    assert {k: inputs[k] for k in ("resize_type.width", "resize_type.height", "resize_type.crop")} == {
        "resize_type.width": 512, "resize_type.height": 512, "resize_type.crop": "center"}


def test_named_widget_values_restore_a_node_saved_by_another_version():
    """A node saved by a newer ComfyUI (here: a DynamicCombo key v0.26 lacks, whose option had one
    widget) shifts every later positional value; the frontend since 1.49 also saves
    ``widgets_values_named``, which restores by name (Comfy.Workflow.NamedValuesRestore). A node
    whose saved names match the schema keeps the positional values, as the frontend reads them."""
    schema = info26()["ElevenLabsTextToSpeech"]
    named = {"text": "hi", "stability": 0.5, "apply_text_normalization": "auto", "model": "eleven_v9",
             "model.similarity_boost": 0.75, "language_code": "", "seed": 42, "control_after_generate": "randomize",
             "output_format": "mp3_44100_192"}
    speech = {"id": 1, "type": "ElevenLabsTextToSpeech", "mode": 0, "properties": {}, "outputs": [],
              "inputs": [{"name": "voice", "type": "ELEVENLABS_VOICE", "link": None}],
              "widgets_values": list(named.values())}
    shifted = ui_to_api({"nodes": [speech], "links": []}, info26())["1"]["inputs"]
    assert shifted["seed"] == "" and shifted["language_code"] == 0.75  # positional, as the frontend reads it
    restored = ui_to_api({"nodes": [{**speech, "widgets_values_named": named}], "links": []}, info26())["1"]["inputs"]
    assert {k: restored[k] for k in ("seed", "language_code", "output_format", "model")} == {
        "seed": 42, "language_code": "", "output_format": "mp3_44100_192", "model": "eleven_v9"}
    assert "model.similarity_boost" not in restored and set(restored) <= set(schema.inputs)
    # a key of the schema's own: option widgets are restored under "<combo>.<name>", and positional
    # values stay authoritative while the saved names are the schema's (a hand edit wins)
    key = schema.inputs["model"].config["options"][0]["key"]
    subs = [n for n in schema.inputs["model"].config["options"][0]["inputs"]["required"]]
    current = {"text": "hi", "stability": 0.5, "apply_text_normalization": "auto", "model": key,
               **{f"model.{n}": 1.0 for n in subs}, "language_code": "en", "seed": 42,
               "control_after_generate": "fixed", "output_format": "opus_48000_192"}
    edited = [*current.values()]
    edited[-1] = "mp3_44100_192"
    same_version = {**speech, "widgets_values": edited, "widgets_values_named": current}
    inputs = ui_to_api({"nodes": [same_version], "links": []}, info26())["1"]["inputs"]
    assert inputs["output_format"] == "mp3_44100_192" and all(inputs[f"model.{n}"] == 1.0 for n in subs)


# ---------------------------------------------------------------------------------------------
# The conformance check follows ComfyUI's V3 validation (get_finalized_class_inputs)


def resize_prompt(**resize: Any) -> dict[str, Any]:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
            "2": {"class_type": "ResizeImageMaskNode", "inputs": {"input": ["1", 0], "scale_method": "area", **resize}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def test_v3_dynamic_combos_validate_the_chosen_options_inputs():
    info = info26()
    # a MatchType output feeds an IMAGE input: validate_node_input accepts MatchType on either side
    assert validate_workflow(resize_prompt(resize_type="scale by multiplier", **{"resize_type.multiplier": 1.5}), info) == []
    [error] = validate_workflow(resize_prompt(resize_type="scale by multiplier", **{"resize_type.multiplier": 20}), info)
    assert (error.kind, error.input_name) == ("value_bigger_than_max", "resize_type.multiplier")
    [error] = validate_workflow(resize_prompt(resize_type="scale by multiplier"), info)
    assert (error.kind, error.input_name, error.comfy["details"]) == ("required_input_missing", "resize_type.multiplier", "multiplier")
    # a key the node does not have brings no inputs, and ComfyUI reports nothing for it
    assert validate_workflow(resize_prompt(resize_type="no such mode"), info) == []


def test_v3_autogrow_entries_are_required_only_below_min():
    info = info26()
    shader = {"fragment_shader": "void main() {}", "size_mode": "from_input", "images.image0": ["1", 0]}
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
              "2": {"class_type": "GLSLShader", "inputs": shader},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    assert validate_workflow(prompt, info) == []  # floats, ints, bools, curves have min 0
    del shader["images.image0"]
    [error] = validate_workflow(prompt, info)
    assert (error.kind, error.input_name, error.comfy["details"]) == ("required_input_missing", "images.image0", "image0")
    shader["images.image0"] = ["1", 1]  # a MASK into an IMAGE entry is still a mismatch
    [error] = validate_workflow(prompt, info)
    assert (error.kind, error.input_name) == ("return_type_mismatch", "images.image0")


def test_custom_combo_options_are_the_frontends():
    """CustomCombo's validate_inputs takes **kwargs, so ComfyUI skips its (empty) option list."""
    prompt = {"1": {"class_type": "CustomCombo", "inputs": {"choice": "Music", "option1": "Music"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    assert validate_workflow(prompt, info26()) == []


def test_unknown_nodes_and_group_nodes_are_refused_by_name():
    workflow = copy.deepcopy(MINIMAL)
    workflow["nodes"][1]["type"] = "MysteryNode"
    workflow["nodes"][1]["mode"] = 0
    with pytest.raises(WorkflowRefused, match="MysteryNode"):
        ui_to_api(workflow, info26())
    workflow["extra"]["groupNodes"] = {"g": {}}
    with pytest.raises(RecipeInvalid, match="group nodes"):
        import_workflow(workflow, raw_dump(WITH_MODELS), REGISTRY)
    with pytest.raises(RecipeInvalid, match="object_info"):
        import_workflow(MINIMAL, None, REGISTRY)  # stock nodes need a schema to read their widgets


# ---------------------------------------------------------------------------------------------
# The engine's cache: an unchanged reimport reruns nothing, one edited widget reruns its cone


def test_reimport_keeps_cache_keys_and_an_edit_reruns_only_its_cone(registry, engine, tmp_path):
    document = {
        "name": "cone",
        "params": {"salt": {"type": "string", "default": "s", "description": "shared salt"}},
        "nodes": {
            "a": {"type": "test.mix", "inputs": {"salt": {"param": "salt"}, "a": "first"}},
            "b": {"type": "test.mix", "inputs": {"salt": "b", "a": {"link": ["a", "out"]}}},
            "c": {"type": "test.mix", "inputs": {"salt": "c", "a": {"link": ["a", "out"]}}},
            "d": {"type": "test.mix", "inputs": {"salt": "d", "a": {"link": ["b", "out"]}, "b": {"link": ["c", "out"]}}},
        },
        "outputs": {"result": {"link": ["d", "out"]}},
    }
    declarations = pack_declarations(registry)
    info = combined_info(None, declarations)
    recipe = parse_recipe(document)
    first = engine.run(bind_recipe(recipe, registry, base_dir=tmp_path), RunOptions(workers=1))
    assert executed(first) == {(n, None) for n in "abcd"}
    ui = json.loads(json.dumps(recipe_to_ui(recipe, info, declarations)))
    again = recipe_from_ui(ui, info, declarations)
    second = engine.run(bind_recipe(again, registry, base_dir=tmp_path), RunOptions(workers=1))
    assert executed(second) == set()
    assert {e.cache_key for e in second.executions} == {e.cache_key for e in first.executions}
    node_c = next(n for n in ui["nodes"] if n.get("title") == "c")
    node_c["widgets_values"][0] = "c, edited on the canvas"  # salt is the first widget
    edited = recipe_from_ui(ui, info, declarations)
    third = engine.run(bind_recipe(edited, registry, base_dir=tmp_path), RunOptions(workers=1))
    assert executed(third) == {("c", None), ("d", None)}


def test_cli_exports_and_imports_ui_format(cli, tmp_path):
    proc = cli("export", "--format", "comfy-ui", "title-cards", "-o", "ui.json", check_code=0)
    assert proc.stdout == ""
    ui = json.loads((tmp_path / "ui.json").read_text())
    assert ui["version"] == 0.4 and ui["extra"]["reelgraph"]["name"] == "title-cards"
    cli("import", "ui.json", "-o", "recipe.json", check_code=0)
    imported = parse_recipe((tmp_path / "recipe.json").read_bytes())
    assert same(imported, parse_recipe((TEMPLATES / "title-cards.json").read_bytes()).model_copy(update={"name": "title-cards"}))
    cli("validate", "recipe.json", check_code=0)


# ---------------------------------------------------------------------------------------------
# ComfyUI-placed nodes as subgraphs of the stock nodes they compile to


def expandable_recipe(tmp_path) -> dict[str, Any]:
    from PIL import Image

    Image.new("RGB", (64, 96), "#336699").save(tmp_path / "start.png")
    (tmp_path / "clip.mp4").write_bytes(b"a clip's bytes")
    return {
        "name": "expanded",
        "params": {"seed": {"type": "integer", "default": 7, "description": "still seed"}},
        "nodes": {
            "still": {"type": "image.generate", "inputs": {"prompt": "a red fox", "model": "sdxl",
                                                            "seed": {"param": "seed"}, "width": 512, "height": 768}},
            "motion": {"type": "video.i2v", "inputs": {"image": "start.png", "seconds": 2.0, "fps": 24, "width": 512,
                                                        "height": 768, "model": "wan2.2", "prompt": "the fox runs"}},
            "smooth": {"type": "video.interpolate", "inputs": {"video": {"link": ["motion", "video"]}, "fps": 48,
                                                                "method": "rife"}},
            "again": {"type": "video.interpolate", "inputs": {"video": "clip.mp4", "fps": 60, "method": "core"}},
            "card": {"type": "image.title_card", "inputs": {"text": "local"}},
        },
        "outputs": {"video": {"link": ["smooth", "video"]}, "still": {"link": ["still", "image"]},
                    "again": {"link": ["again", "video"]}},
    }


def test_comfy_nodes_expand_to_validated_stock_subgraphs_and_come_back(engine, tmp_path):
    info = full_instance(WITH_MODELS)
    registry = NodeRegistry([*BUILTIN_TYPES, *PIPELINE_TYPES])
    recipe = parse_recipe(expandable_recipe(tmp_path))
    ui = json.loads(json.dumps(export_ui(recipe, info.raw, registry, expand_comfy=True)))
    assert_well_formed(ui)
    definitions = {d["id"]: d for d in ui["definitions"]["subgraphs"]}
    instances = {n["title"]: n for n in ui["nodes"] if n["type"] in definitions}
    assert set(instances) == {"still", "motion", "smooth", "again"}  # the title card runs locally: a pack node
    combined = combined_info(info.raw, DECLARATIONS)
    for title, instance in instances.items():
        inner = definitions[instance["type"]]
        assert {n["type"] for n in inner["nodes"]} <= set(raw_dump(WITH_MODELS))  # stock classes only
        prompt = ui_to_api({"nodes": inner["nodes"], "links": inner["links"]}, combined)
        assert validate_workflow(prompt, info) == [], title
        declaration = next(d for d in DECLARATIONS if d["id"] == recipe.nodes[title].type)
        assert [i["name"] for i in instance["inputs"]] == [d["name"] for d in inner["inputs"]] == [
            p["name"] for p in declaration["inputs"] if not p.get("optional")] + [
            p["name"] for p in declaration["inputs"] if p.get("optional")]
        assert [o["name"] for o in instance["outputs"]] == [o["name"] for o in inner["outputs"]] == ["video", "placement"] \
            if title != "still" else ["image", "placement"]
    motion = definitions[instances["motion"]["type"]]
    assert {"UNETLoader", "WanImageToVideo", "KSamplerAdvanced", "SaveVideo"} <= {n["type"] for n in motion["nodes"]}
    assert next(n for n in motion["nodes"] if n["type"] == "LoadImage")["widgets_values"][0] == "start.png"
    # the link into the expanded node and out of it are the recipe's links
    smooth = instances["smooth"]
    assert any(link[1] == instances["motion"]["id"] and link[3] == smooth["id"] for link in ui["links"])

    again = import_workflow(ui, info.raw, registry)
    assert same(again, recipe)
    keys = [(e.node, e.cache_key) for e in engine.plan(bind_recipe(recipe, registry, base_dir=tmp_path))]
    assert [(e.node, e.cache_key) for e in engine.plan(bind_recipe(again, registry, base_dir=tmp_path))] == keys
    assert sum(1 for _, key in keys if key) >= 3

    with pytest.raises(RecipeInvalid, match="motion .*needs the ComfyUI instance's /object_info"):
        import_workflow(ui, None, registry)
    sampler = next(n for n in motion["nodes"] if n["type"] == "KSamplerAdvanced")
    sampler["widgets_values"][3] += 1  # steps, edited on the canvas inside the subgraph
    with pytest.raises(RecipeInvalid, match="motion .*was edited inside its subgraph"):
        import_workflow(ui, info.raw, registry)


def test_expansion_needs_an_instance_that_can_run_the_node(tmp_path):
    recipe = parse_recipe(expandable_recipe(tmp_path))
    with pytest.raises(RecipeInvalid, match="needs the instance's /object_info"):
        export_ui(recipe, None, REGISTRY, expand_comfy=True)
    with pytest.raises(RecipeInvalid, match=r"node motion \(video.i2v\) cannot be expanded .*wan2.2_i2v_high_noise"):
        export_ui(recipe, raw_dump(OLD), REGISTRY, expand_comfy=True)  # 0.3.64: no model files


def test_cli_exports_expanded_comfy_nodes(cli, tmp_path):
    (tmp_path / "recipe.json").write_text(json.dumps(expandable_recipe(tmp_path)))
    dump_file = full_instance_file(tmp_path / "dumps")
    cli("export", "--format", "comfy-ui", "--expand-comfy", "--object-info", str(dump_file), "recipe.json",
        "-o", "ui.json", check_code=0)
    ui = json.loads((tmp_path / "ui.json").read_text())
    assert len(ui["definitions"]["subgraphs"]) == 4
    cli("import", "ui.json", "--object-info", str(dump_file), "-o", "back.json", check_code=0)
    assert same(parse_recipe((tmp_path / "back.json").read_bytes()), parse_recipe(expandable_recipe(tmp_path)))
    refused = cli("export", "--format", "comfy-ui", "--expand-comfy", "recipe.json", check_code=2)
    assert "--object-info" in refused.stderr


def test_frontend_opens_expanded_nodes_and_saves_them_back(tmp_path):
    """ComfyUI's own frontend loads the expanded export (subgraph definitions and all), queues the
    stock nodes inside as a valid prompt, and what it saves imports as the same recipe."""
    screenshot = pytest.importorskip("reelgraph.tests.test_comfy_screenshot")
    if screenshot.CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    info = full_instance(WITH_MODELS)
    recipe = parse_recipe(expandable_recipe(tmp_path))
    workflow = export_ui(recipe, info.raw, REGISTRY, expand_comfy=True)
    server = screenshot.FrontendServer({**info.raw, **combined_info(None, DECLARATIONS).raw}, tmp_path / "comfy").start()
    browser = screenshot.Browser(tmp_path / "profile")
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=server.url + "/")
        browser.evaluate(screenshot.WAIT_FOR_APP)
        page = browser.evaluate("""(async () => {
          await window.app.loadGraphData(WORKFLOW);
          await new Promise(r => setTimeout(r, 1500));
          const graph = window.app.graph;
          return {saved: graph.serialize(), prompt: (await window.app.graphToPrompt()).output,
                  subgraphs: graph.nodes.filter(n => n.subgraph).map(n => [n.title, n.subgraph.nodes.length])};
        })()""".replace("WORKFLOW", json.dumps(workflow)))
    finally:
        browser.close()
        server.stop()
    definitions = {d["id"]: d for d in workflow["definitions"]["subgraphs"]}
    expected = {n["title"]: len(definitions[n["type"]]["nodes"]) for n in workflow["nodes"] if n["type"] in definitions}
    assert dict(page["subgraphs"]) == expected
    stock = {k: v for k, v in page["prompt"].items() if not v["class_type"].startswith("reelgraph.")}
    assert len(stock) == sum(expected.values()) and validate_workflow(stock, info) == []
    assert same(import_workflow(page["saved"], info.raw, REGISTRY), recipe)
