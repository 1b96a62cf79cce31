"""The compiler against the real /object_info dumps (conformance), its refusals, its shape
arithmetic, and the mapping of ComfyUI error payloads back to recipe nodes."""

from __future__ import annotations

import copy
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reelgraph.comfy_workflows.compiler import (
    STILL_MODELS,
    VIDEO_MODELS,
    Interpolation,
    KlingParams,
    StillParams,
    VideoOutput,
    VideoParams,
    compile_interpolation,
    compile_still,
    compile_video,
    compile_kling_interpolated,
    compile_video_interpolated,
    fragment_names,
    frames_for,
    snap,
)
from reelgraph.comfy_workflows.errors import (
    CompileError,
    map_execution_error,
    map_prompt_errors,
)
from reelgraph.comfy_workflows.schema import ObjectInfo, validate_workflow
from reelgraph.comfy_workflows.ui_workflow import ui_workflow
from reelgraph.graphs.comfy_api import recipe_to_api
from reelgraph.graphs.comfy_ui import recipe_from_ui
from reelgraph.tests.comfy_server_fixtures import (
    NO_MODELS,
    OLD,
    WITH_MODELS,
    dump,
    full_instance,
    raw_dump,
)


def params(model: str, **extra) -> VideoParams:
    image = "jobs/run1/start.png" if VIDEO_MODELS[model].image == "required" else None
    return VideoParams(model, "a lighthouse at dusk", seed=7, seconds=2.0, image=image, **extra)


def assert_conforms(compiled, info: ObjectInfo) -> None:
    """Valid for ComfyUI, and every required widget input written out (never the server's default);
    its UI-format workflow (what the pool sends in extra_pnginfo) reads back as the same prompt."""
    assert [str(e) for e in validate_workflow(compiled.prompt, info, check_steps=True)] == []
    for node_id, node in compiled.prompt.items():
        schema = info[node["class_type"]]
        missing = [n for n in schema.required if schema.inputs[n].is_widget and n not in node["inputs"]]
        assert missing == [], f"node {node_id} {node['class_type']} leaves {missing} to the server"
        assert compiled.node_map[node_id] == "scene3"
    workflow = ui_workflow(compiled.prompt, info, compiled.model_files)
    assert recipe_to_api(recipe_from_ui(workflow, info, [])) == compiled.prompt


INTERPOLATIONS = [None, Interpolation(2, method="core"), Interpolation(3, method="rife")]
OUTPUTS = [VideoOutput(node="savevideo"), VideoOutput(node="vhs")]


@pytest.mark.parametrize("model", sorted(VIDEO_MODELS))
def test_every_video_fragment_conforms_to_0_26(model):
    info = full_instance(WITH_MODELS)
    for interp, out in itertools.product(INTERPOLATIONS, OUTPUTS):
        compiled = compile_video(params(model), info, recipe_node="scene3", instance="gpu-1",
                                 interpolation=interp, output=out)
        assert_conforms(compiled, info)
        classes = {n["class_type"] for n in compiled.prompt.values()}
        assert ("VHS_VideoCombine" in classes) == (out.node == "vhs")
        assert ("FrameInterpolate" in classes) == (interp is not None and interp.method == "core")
        assert ("RIFE VFI" in classes) == (interp is not None and interp.method == "rife")


@pytest.mark.parametrize("model", sorted(VIDEO_MODELS))
def test_every_video_fragment_conforms_to_0_3_64(model):
    """The older server has every class but core FrameInterpolate (and no model files: added)."""
    info = full_instance(OLD)
    for interp, out in itertools.product([None, Interpolation(2)], OUTPUTS):
        compiled = compile_video(params(model), info, recipe_node="scene3", instance="gpu-old",
                                 interpolation=interp, output=out)
        assert_conforms(compiled, info)
        if interp is not None:  # auto falls back to the RIFE pack here
            assert "RIFE VFI" in {n["class_type"] for n in compiled.prompt.values()}
    with pytest.raises(CompileError, match="node class FrameInterpolate is not on instance gpu-old "
                                           r"\(needs ComfyUI core v0.20 or newer\)"):
        compile_video(params(model), info, recipe_node="scene3", instance="gpu-old",
                      interpolation=Interpolation(2, method="core"))


@pytest.mark.parametrize("name", [OLD, WITH_MODELS])
def test_stills_and_standalone_interpolation_conform(name):
    info = full_instance(name)
    for model in STILL_MODELS:
        compiled = compile_still(StillParams(model, "a red kite", width=1000, height=600), info,
                                 recipe_node="scene3", instance="gpu-1")
        assert_conforms(compiled, info)
        assert compiled.width % STILL_MODELS[model].size_step == 0
    for method, out in itertools.product(["auto", "rife"], OUTPUTS):
        compiled = compile_interpolation("jobs/r/clip.mp4", 16.0, info, recipe_node="scene3", instance="gpu-1",
                                         interpolation=Interpolation(2, method=method), output=out)
        assert_conforms(compiled, info)
        assert compiled.fps == 32.0


def test_what_the_raw_dumps_accept():
    """Against the dumps as they are: which models an instance like that could run."""
    runnable = []
    for model in sorted(VIDEO_MODELS):
        try:
            compile_video(params(model), dump(WITH_MODELS), recipe_node="scene3", instance="gpu-1")
            runnable.append(model)
        except CompileError as exc:
            assert "is not on instance gpu-1" in str(exc)
    assert "wan2.2-14b-i2v" in runnable and "hunyuan-t2v" in runnable
    assert "hunyuan-i2v" not in runnable  # its v2-replace model and llava vision encoder are not listed
    for name in (NO_MODELS, OLD):
        with pytest.raises(CompileError):
            compile_video(params("wan2.2-14b-i2v"), dump(name), recipe_node="scene3", instance="gpu-1")


def test_missing_model_is_refused_with_a_plain_message():
    with pytest.raises(CompileError) as caught:
        compile_video(params("wan2.2-14b-i2v"), dump(NO_MODELS), recipe_node="scene3", instance="gpu-1")
    message = str(caught.value)
    assert ("recipe node 'scene3' (ComfyUI node 5 UNETLoader): model file "
            "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors is not on instance gpu-1 (input unet_name)") in message
    assert {e.recipe_node for e in caught.value.errors} == {"scene3"}
    assert len(caught.value.errors) == 4  # text encoder, VAE, two experts: all named at once


def test_missing_classes_are_refused_naming_the_pack():
    document = copy.deepcopy(raw_dump(WITH_MODELS))
    for cls in ("RIFE VFI", "FrameInterpolate", "FrameInterpolationModelLoader"):
        document.pop(cls)
    info = ObjectInfo(document)
    with pytest.raises(CompileError, match=r"recipe node 'smooth' \(ComfyUI node \d+ RIFE VFI\): node class RIFE VFI "
                                           r"is not on instance gpu-1 \(needs custom node pack ComfyUI-Frame-Interpolation\)"):
        compile_video(params("wan2.2-14b-t2v"), info, recipe_node="scene3", instance="gpu-1",
                      interpolation=Interpolation(2, method="rife", recipe_node="smooth"))


def test_defaults_come_from_the_instance():
    """Required inputs we do not set take the instance's declared defaults: a RIFE pack from before
    Feb 2026 (no dtype/torch_compile/batch_size) gets none of them, a changed default is followed."""
    document = copy.deepcopy(raw_dump(WITH_MODELS))
    rife = document["RIFE VFI"]["input"]["required"]
    rife["dtype"][1]["default"] = "bfloat16"
    compiled = compile_video(params("wan2.2-14b-t2v"), ObjectInfo(document), recipe_node="scene3", instance="gpu-1",
                             interpolation=Interpolation(2, method="rife"))
    [node] = [n for n in compiled.prompt.values() if n["class_type"] == "RIFE VFI"]
    assert node["inputs"]["dtype"] == "bfloat16" and node["inputs"]["batch_size"] == 1
    for name in ("dtype", "torch_compile", "batch_size"):
        del rife[name]
    old_pack = ObjectInfo(document)
    compiled = compile_video(params("wan2.2-14b-t2v"), old_pack, recipe_node="scene3", instance="gpu-1",
                             interpolation=Interpolation(2, method="rife"))
    [node] = [n for n in compiled.prompt.values() if n["class_type"] == "RIFE VFI"]
    assert not {"dtype", "torch_compile", "batch_size"} & set(node["inputs"])
    assert_conforms(compiled, old_pack)
    # VHS format options (pix_fmt, crf, ...) are top-level keys with the format's defaults.
    compiled = compile_video(params("wan2.2-14b-t2v"), dump(WITH_MODELS), recipe_node="scene3", instance="gpu-1",
                             output=VideoOutput(node="vhs", vhs_format="video/h265-mp4"))
    [vhs] = [n for n in compiled.prompt.values() if n["class_type"] == "VHS_VideoCombine"]
    assert vhs["inputs"]["crf"] == 22 and vhs["inputs"]["pix_fmt"] == "yuv420p10le"


def test_output_node_follows_what_the_instance_has():
    document = copy.deepcopy(raw_dump(WITH_MODELS))
    auto = compile_video(params("wan2.1-t2v-1.3b"), ObjectInfo(document), recipe_node="scene3", instance="gpu-1")
    assert "SaveVideo" in {n["class_type"] for n in auto.prompt.values()}
    del document["SaveVideo"]
    no_core = compile_video(params("wan2.1-t2v-1.3b"), ObjectInfo(document), recipe_node="scene3", instance="gpu-1")
    assert no_core.output_nodes and no_core.prompt[no_core.output_nodes[0]]["class_type"] == "VHS_VideoCombine"


def test_parameters_reach_the_workflow():
    compiled = compile_video(
        VideoParams("wan2.2-14b-i2v", "a knight raises his sword", negative="blurry", seed=2**40, steps=8, cfg=2.0,
                    shift=6.0, width=1080, height=1920, seconds=3.0, fps=16, motion="slow push-in",
                    image="jobs/r/knight.png"),
        dump(WITH_MODELS), recipe_node="scene3", instance="gpu-1", interpolation=Interpolation(2, method="rife"),
        output=VideoOutput(filename_prefix="jobs/r/scene3"))
    by_class: dict[str, list[dict]] = {}
    for node in compiled.prompt.values():
        by_class.setdefault(node["class_type"], []).append(node["inputs"])
    texts = {i["text"] for i in by_class["CLIPTextEncode"]}
    assert texts == {"a knight raises his sword. Slow push-in", "blurry"}
    [i2v] = by_class["WanImageToVideo"]
    assert (i2v["width"], i2v["height"], i2v["length"]) == (1088, 1920, 49)  # snapped to 16; 3 s at 16 fps
    high, low = sorted(by_class["KSamplerAdvanced"], key=lambda i: i["start_at_step"])
    assert high["noise_seed"] == 2**40 and (high["end_at_step"], low["start_at_step"]) == (4, 4)
    assert {i["shift"] for i in by_class["ModelSamplingSD3"]} == {6.0}
    assert by_class["LoadImage"][0]["image"] == "jobs/r/knight.png"
    assert by_class["CreateVideo"][0]["fps"] == 32.0 and by_class["SaveVideo"][0]["filename_prefix"] == "jobs/r/scene3"
    assert (compiled.frames, compiled.fps) == (97, 32.0)
    assert "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors" in compiled.model_files
    assert all(n["_meta"]["title"].startswith("scene3: ") for n in compiled.prompt.values())


def test_requests_a_model_cannot_serve_are_refused():
    info = dump(WITH_MODELS)
    cases = [
        (VideoParams("wan2.1-t2v-1.3b", "x", seconds=9.0), "needs 145 frames; wan2.1-t2v-1.3b makes at most 81"),
        (VideoParams("wan2.2-14b-i2v", "x"), "needs a start image"),
        (VideoParams("wan2.1-t2v-1.3b", "x", image="a.png"), "takes no start image"),
        (VideoParams("wan2.2-14b-i2v", "x", image="a.png", noise_aug=0.1), "has no noise augmentation input"),
        (VideoParams("sora", "x"), "unknown video model 'sora'"),
        (VideoParams("wan2.1-t2v-1.3b", "x", cfg=500.0), "input 'cfg' is 500.0, above the maximum 100.0"),
    ]
    for request, expected in cases:
        with pytest.raises(CompileError, match="recipe node 'scene3'") as caught:
            compile_video(request, info, recipe_node="scene3", instance="gpu-1")
        assert expected in str(caught.value)


@given(seconds=st.floats(0.05, 8.0), fps=st.sampled_from([8, 12, 16, 24, 25, 30]))
def test_lengths_are_the_smallest_4k_plus_1_covering_the_slot(seconds, fps):
    frames = frames_for(seconds, fps)
    assert frames % 4 == 1 and frames >= 5
    assert frames >= seconds * fps - 1e-6
    assert frames - 4 < max(5, seconds * fps)  # one step less would not cover it


@given(value=st.integers(1, 5000), step=st.sampled_from([8, 16, 32]))
def test_sizes_snap_to_the_nearest_step(value, step):
    snapped = snap(value, step)
    assert snapped % step == 0 and snapped >= step
    assert abs(snapped - value) <= step / 2 or value < step


def test_fragments_are_all_used_and_valid_json():
    used = {"wan21_t2v", "wan21_i2v", "wan22_14b_t2v", "wan22_14b_i2v", "wan22_14b_t2v_4step", "wan22_14b_i2v_4step",
            "wan22_5b_t2v", "wan22_5b_i2v", "hunyuan_t2v",
            "hunyuan_i2v", "sdxl_still", "flux_still", "rife_vfi", "frame_interpolate", "load_video_core",
            "load_video_vhs", "save_video", "vhs_video_combine", "save_image", "kling_i2v", "video_frames"}
    assert set(fragment_names()) == used


def test_node_errors_map_back_to_recipe_nodes():
    """The body recorded from a live server (reference §2.2), against a compiled node map."""
    body = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                  "details": "", "extra_info": {}},
        "node_errors": {
            "37": {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
                               "details": "unet_name: 'does_not_exist.safetensors' not in ['a.safetensors']",
                               "extra_info": {"input_name": "unet_name", "input_config": [["a.safetensors"], {}],
                                              "received_value": "does_not_exist.safetensors"}}],
                   "dependent_outputs": ["50"], "class_type": "UNETLoader"},
            "3": {"errors": [{"type": "required_input_missing", "message": "Required input is missing",
                              "details": "steps", "extra_info": {"input_name": "steps"}}],
                  "dependent_outputs": ["50"], "class_type": "KSampler"},
        },
    }
    mapped = map_prompt_errors(body, {"37": "scene1", "3": "scene2"}, instance="gpu-1")
    assert [str(e) for e in mapped] == [
        "recipe node 'scene1' (ComfyUI node 37 UNETLoader): model file does_not_exist.safetensors is not on "
        "instance gpu-1 (input 'unet_name')",
        "recipe node 'scene2' (ComfyUI node 3 KSampler): required input 'steps' is missing",
    ]
    missing = {"error": {"type": "missing_node_type", "message": "Node 'X' not found. The custom node may not be installed.",
                         "details": "Node ID '#99'", "extra_info": {"node_id": "99", "class_type": "NotARealNode",
                                                                    "node_title": "X"}}, "node_errors": {}}
    [error] = map_prompt_errors(missing, {"99": "scene4"}, instance="gpu-1")
    assert str(error) == ("recipe node 'scene4' (ComfyUI node 99 NotARealNode): node class NotARealNode is not on "
                          "instance gpu-1 (custom node pack not installed?)")


def test_execution_errors_map_back_to_recipe_nodes():
    payload = {"prompt_id": "c3b9af0a-0000-4000-8000-000000000000", "node_id": "39", "node_type": "VAELoader",
               "executed": [], "exception_message": "Error while deserializing header: header too small\n",
               "exception_type": "safetensors._safetensors_rust.SafetensorError", "traceback": [],
               "current_inputs": {"vae_name": ["wan_2.1_vae.safetensors"]}, "current_outputs": [], "timestamp": 1}
    error = map_execution_error(payload, {"39": "scene7"})
    assert str(error) == ("recipe node 'scene7' (ComfyUI node 39 VAELoader): failed with SafetensorError: "
                          "Error while deserializing header: header too small")
    oom = map_execution_error({**payload, "exception_type": "torch.OutOfMemoryError",
                               "exception_message": "CUDA out of memory. Tried to allocate 2 GiB\nTIPS: ..."},
                              {"39": "scene7"})
    assert oom.recipe_node == "scene7"
    flattened = map_execution_error({**payload, "node_id": "129:39"}, {"129": "scene8"})
    assert flattened.recipe_node == "scene8"  # subgraph ids belong to their instance node
    assert "ran out of GPU memory" in oom.message


@pytest.mark.parametrize("model", sorted(m for m, spec in VIDEO_MODELS.items() if spec.image != "none"))
def test_fused_generation_and_interpolation_save_both_clips(model):
    """One prompt for i2v followed by interpolation: two output nodes, the raw clip and the
    interpolated one, each mapped to its recipe node; valid on both servers."""
    for name, method in [(WITH_MODELS, "core"), (WITH_MODELS, "rife"), (OLD, "auto")]:
        info = full_instance(name)
        for out in OUTPUTS:
            compiled = compile_video_interpolated(
                params(model), info, recipe_node="scene3", instance="gpu-1", output=out,
                interpolation=Interpolation(3, method=method, recipe_node="smooth[3]"),
                interpolated_output=VideoOutput(node=out.node, filename_prefix="jobs/x/smooth"))
            assert [str(e) for e in validate_workflow(compiled.prompt, info, check_steps=True)] == []
            assert sorted(compiled.roles.values()) == ["interpolated", "video"]
            assert set(compiled.roles) == set(compiled.output_nodes)
            by_role = {role: node_id for node_id, role in compiled.roles.items()}
            assert compiled.node_map[by_role["video"]] == "scene3"
            assert compiled.node_map[by_role["interpolated"]] == "smooth[3]"
            interpolators = [i for i, n in compiled.prompt.items() if n["class_type"] in ("RIFE VFI", "FrameInterpolate")]
            assert [compiled.node_map[i] for i in interpolators] == ["smooth[3]"]
            saved_fps = {role: _saved_fps(compiled, node_id) for role, node_id in by_role.items()}
            assert saved_fps == {"video": compiled.fps, "interpolated": compiled.fps * 3}
            alone = compile_video(params(model), info, recipe_node="scene3", instance="gpu-1", output=out)
            generation = {i: n for i, n in alone.prompt.items() if not info[n["class_type"]].output_node
                          and n["class_type"] != "CreateVideo"}
            assert all(compiled.prompt[i] == n for i, n in generation.items())  # ComfyUI's cache is shared
    with pytest.raises(CompileError, match="multiplier of at least 2"):
        compile_video_interpolated(params(model), full_instance(WITH_MODELS), recipe_node="scene3", instance="gpu-1",
                                   interpolation=Interpolation(1))


def test_kling_and_its_interpolation_save_both_clips():
    """Kling's VIDEO is split into frames and interpolated in the same prompt, which saves both."""
    for name, method in [(WITH_MODELS, "core"), (WITH_MODELS, "rife")]:
        info = full_instance(name)
        compiled = compile_kling_interpolated(
            KlingParams("waves", "start.png", seconds=4.0, width=720, height=1280), info, recipe_node="scene2",
            instance="gpu-1", interpolation=Interpolation(2, method=method, recipe_node="smooth[2]"))
        assert [str(e) for e in validate_workflow(compiled.prompt, info, check_steps=True)] == []
        by_role = {role: node_id for node_id, role in compiled.roles.items()}
        assert set(by_role) == {"video", "interpolated"} and set(compiled.roles) == set(compiled.output_nodes)
        assert compiled.node_map[by_role["video"]] == "scene2" and compiled.node_map[by_role["interpolated"]] == "smooth[2]"
        assert _saved_fps(compiled, by_role["interpolated"]) == 48.0
        assert (compiled.frames, compiled.fps, compiled.width, compiled.height) == (120, 24.0, 720, 1280)
        assert sum(n["class_type"] == "KlingImage2VideoNode" for n in compiled.prompt.values()) == 1


def _saved_fps(compiled, node_id: str) -> float:
    node = compiled.prompt[node_id]
    if node["class_type"] == "VHS_VideoCombine":
        return node["inputs"]["frame_rate"]
    return compiled.prompt[node["inputs"]["video"][0]]["inputs"]["fps"]
