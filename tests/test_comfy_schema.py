"""The /object_info parser and ComfyUI's validation rules, against the real dumps and the error
shapes that reference/comfyui.md §2.2 recorded from a live v0.26 server."""

from __future__ import annotations

import copy

import pytest
from reelgraph.comfy_workflows.schema import (
    ObjectInfo,
    check_prompt,
    parse_input,
    types_match,
    validate_workflow,
)
from reelgraph.tests.comfy_server_fixtures import OLD, WITH_MODELS, dump

# Wan 2.1 T2V as in reference §5.4 (validated there against a live v0.26 server).
WAN_T2V = {
    "37": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors", "weight_dtype": "default"}},
    "38": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"}},
    "39": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
    "48": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["37", 0], "shift": 8.0}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": "a fox in the snow"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": "blurry"}},
    "40": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 832, "height": 480, "length": 33, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"model": ["48", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["40", 0],
          "seed": 82628696717253, "steps": 30, "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["39", 0]}},
    "49": {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": 16.0}},
    "50": {"class_type": "SaveVideo", "inputs": {"video": ["49", 0], "filename_prefix": "video/wan21_t2v", "format": "auto", "codec": "auto"}},
}


def wan() -> dict:
    return copy.deepcopy(WAN_T2V)


def test_both_combo_encodings_are_parsed():
    info = dump(WITH_MODELS)
    legacy = info["UNETLoader"].inputs["unet_name"]  # [[files...], {}]
    v3 = info["SaveVideo"].inputs["format"]  # ["COMBO", {"options": [...]}]
    assert legacy.is_combo and "wan2.1_t2v_1.3B_fp16.safetensors" in legacy.options
    assert v3.is_combo and v3.options == ("auto", "mp4") and v3.default() == "auto"
    assert parse_input("x", [["a", "b"]], True).default() == "a"  # no declared default: first option
    assert info["KSampler"].required[:3] == ("model", "seed", "steps")  # input_order kept
    assert info["RIFE VFI"].pack == "ComfyUI-Frame-Interpolation"
    assert info["LoadImage"].inputs["image"].is_upload


def test_reference_workflow_is_valid_on_both_versions_where_models_exist():
    assert validate_workflow(WAN_T2V, dump(WITH_MODELS), check_steps=True) == []
    # 0.3.64 has every class but no model files: exactly the three loaders fail, in plain words.
    errors = validate_workflow(WAN_T2V, dump(OLD), instance="gpu-7")
    assert {(e.node_id, e.kind) for e in errors} == {("37", "value_not_in_list"), ("38", "value_not_in_list"),
                                                     ("39", "value_not_in_list")}
    assert "model file wan2.1_t2v_1.3B_fp16.safetensors is not on instance gpu-7" in str(errors[0]) + str(errors[1]) + str(errors[2])


def test_several_problems_have_the_live_server_shapes():
    prompt = wan()
    prompt["37"]["inputs"]["unet_name"] = "does_not_exist.safetensors"
    del prompt["3"]["inputs"]["steps"]
    prompt["3"]["inputs"]["cfg"] = 200
    check = check_prompt(prompt, dump(WITH_MODELS))
    assert check.error["type"] == "prompt_outputs_failed_validation"
    assert check.good_outputs == []
    unet = check.node_errors["37"]
    assert unet["class_type"] == "UNETLoader" and unet["dependent_outputs"] == ["50"]
    [not_in_list] = unet["errors"]
    assert not_in_list["type"] == "value_not_in_list"
    assert not_in_list["details"].startswith("unet_name: 'does_not_exist.safetensors' not in (list of length ")
    assert not_in_list["extra_info"]["input_config"] is None  # more than 20 options
    sampler = {e["type"]: e for e in check.node_errors["3"]["errors"]}
    assert sampler["required_input_missing"]["details"] == "steps"
    assert sampler["value_bigger_than_max"]["message"] == "Value 200.0 bigger than max of 100.0"
    assert sampler["value_bigger_than_max"]["extra_info"]["received_value"] == 200.0
    # Nodes invalid only because of an upstream node are not listed.
    assert set(check.node_errors) == {"37", "3"}
    plain = [str(e) for e in check.errors("gpu-1")]
    assert "node 3 (KSampler): required input 'steps' is missing" in plain
    assert "node 3 (KSampler): input 'cfg' is 200.0, above the maximum 100.0" in plain
    assert any("node 37 (UNETLoader): model file does_not_exist.safetensors is not on instance gpu-1" in p for p in plain)


def test_type_conversion_and_link_errors():
    prompt = wan()
    prompt["3"]["inputs"]["seed"] = "abc"
    prompt["3"]["inputs"]["model"] = ["39", 0]  # a VAE into a MODEL input
    prompt["3"]["inputs"]["steps"] = "12"  # converted, accepted
    prompt["6"]["inputs"]["clip"] = ["38", 0, 1]
    errors = {e["type"]: e for e in check_prompt(prompt, dump(WITH_MODELS)).node_errors["3"]["errors"]}
    assert errors["invalid_input_type"]["details"] == "seed, abc, invalid literal for int() with base 10: 'abc'"
    assert errors["return_type_mismatch"]["details"] == "model, received_type(VAE) mismatch input_type(MODEL)"
    assert errors["return_type_mismatch"]["extra_info"]["linked_node"] == ["39", 0]
    assert "steps" not in str(errors)
    found = validate_workflow(prompt, dump(WITH_MODELS))
    assert any(e.kind == "bad_linked_input" and e.node_id == "6" for e in found)
    assert any("needs MODEL but is linked to output 0 of node 39, which gives VAE" in str(e) for e in found)


def test_links_to_missing_nodes_and_slots():
    prompt = wan()
    prompt["8"]["inputs"]["vae"] = ["99", 0]
    [error] = validate_workflow(prompt, dump(WITH_MODELS))
    assert error.node_id == "8" and "linked node '99' is not in the prompt" in str(error)
    prompt = wan()
    prompt["49"]["inputs"]["images"] = ["8", 3]
    [error] = validate_workflow(prompt, dump(WITH_MODELS))
    assert error.node_id == "49" and "node 8 (VAEDecode) has no output 3 (it has 1)" in str(error)


def test_whole_prompt_errors():
    info = dump(WITH_MODELS)
    prompt = wan()
    prompt["99"] = {"class_type": "NotARealNode", "inputs": {}, "_meta": {"title": "My title"}}
    check = check_prompt(prompt, info)
    assert check.error["type"] == "missing_node_type" and check.node_errors == {}
    assert check.error["message"] == "Node 'My title' not found. The custom node may not be installed."
    assert check.error["details"] == "Node ID '#99'"
    assert "node class NotARealNode is not on instance gpu-2" in str(check.errors("gpu-2")[0])
    no_output = {k: v for k, v in wan().items() if k != "50"}
    assert check_prompt(no_output, info).error["type"] == "prompt_no_outputs"
    # partial_execution_targets naming no output node: also no outputs
    assert check_prompt(wan(), info, partial_execution_targets=["3"]).error["type"] == "prompt_no_outputs"


def test_one_good_output_queues_the_prompt_and_reports_the_other():
    prompt = wan()
    prompt["60"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}}  # filename_prefix missing
    check = check_prompt(prompt, dump(WITH_MODELS))
    assert check.ok and check.good_outputs == ["50"]
    assert check.node_errors["60"]["errors"][0]["type"] == "required_input_missing"
    assert check.node_errors["60"]["dependent_outputs"] == ["60"]


def test_leniencies_of_the_real_server():
    prompt = wan()
    prompt["3"]["inputs"]["not_an_input"] = 5  # unknown keys are ignored
    prompt["50"]["inputs"]["filename_prefix"] = 12  # converted to a string
    prompt["40"]["inputs"]["width"] = 840  # step is not enforced by ComfyUI...
    prompt["52"] = {"class_type": "LoadImage", "inputs": {"image": "uploaded/after/object_info.png"}}
    assert validate_workflow(prompt, dump(WITH_MODELS)) == []
    # ...but the compiler holds itself to it.
    [step] = validate_workflow(prompt, dump(WITH_MODELS), check_steps=True)
    assert step.node_id == "40" and step.input_name == "width" and "step 16" in step.cause


def test_custom_checks_and_cycles():
    prompt = wan()
    prompt["52"] = {"class_type": "LoadImage", "inputs": {"image": "missing.png"}}
    prompt["53"] = {"class_type": "SaveImage", "inputs": {"images": ["52", 0], "filename_prefix": "x"}}

    def exists(_node, _cls, inputs):
        return [("image", f"Invalid image file: {inputs['image']}")]

    check = check_prompt(prompt, dump(WITH_MODELS), custom_checks={"LoadImage": exists})
    [error] = check.node_errors["52"]["errors"]
    assert error["type"] == "custom_validation_failed" and error["details"] == "image - Invalid image file: missing.png"
    assert check.good_outputs == ["50"]
    cyclic = wan()
    cyclic["48"]["inputs"]["model"] = ["48", 0]  # a MODEL loop
    assert any(e.kind == "dependency_cycle" for e in validate_workflow(cyclic, dump(WITH_MODELS)))


@pytest.mark.parametrize(("received", "wanted", "ok"), [
    ("IMAGE", "IMAGE", True), ("IMAGE", "*", True), ("*", "MODEL", True), ("IMAGE", "IMAGE,MASK", True),
    ("STRING,FILE_3D", "FILE_3D_GLB,FILE_3D", True), ("VAE", "MODEL", False), ("MASK", "IMAGE", False),
])
def test_type_matching(received, wanted, ok):
    assert types_match(received, wanted) is ok


def test_v3_dynamic_inputs_use_dotted_keys():
    info = dump(WITH_MODELS)
    if "ComfyMathExpression" not in info:
        pytest.skip("ComfyMathExpression not in this dump")
    prompt = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": 4}},
        "2": {"class_type": "ComfyMathExpression", "inputs": {"expression": "a * 2", "values.a": ["1", 0]}},
        "3": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": ["2", 1], "batch_size": 1}},
        "4": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}},
    }
    assert [str(e) for e in validate_workflow(prompt, info)] == []


def test_object_info_mapping_interface():
    info = ObjectInfo({"A": {"input": {"required": {"x": ["INT", {"default": 3}]}}, "output": ["INT"], "output_node": True}})
    assert list(info) == ["A"] and info["A"].inputs["x"].default() == 3 and info.combo("A", "x") == ()
