"""Inside ComfyUI, pack nodes placed on ComfyUI (i2v with Wan/Kling, image.generate with SDXL,
interpolate with RIFE) expand into the stock nodes the engine would submit, checked against the
real schemas, and the expansion's result node turns ComfyUI's frames into the node's contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from reelgraph.comfy_pack.declare import object_info as pack_object_info
from reelgraph.comfy_workflows.schema import ObjectInfo, validate_workflow
from reelgraph.graphs.comfy_ui import pack_declarations
from reelgraph.tests.comfy_server_fixtures import NO_MODELS, WITH_MODELS, full_instance, raw_dump

REPO = Path(__file__).resolve().parent.parent

# The pack loaded as ComfyUI loads it, in a process whose `nodes` module holds the classes of a
# real /object_info dump (each describing itself like a V3 class) beside the pack's, with
# folder_paths' temp and input folders; then pack nodes run as ComfyUI calls them.
LOADER = r"""
import importlib.util, json, sys, types
import numpy
repo, root, dump_path, mode = sys.argv[1:5]
name = repo.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(name, repo + "/__init__.py", submodule_search_locations=[repo])
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
folder_paths = types.ModuleType("folder_paths")
folder_paths.get_temp_directory = lambda: root + "/temp"
folder_paths.get_input_directory = lambda: root + "/input"
nodes = types.ModuleType("nodes")
def stock(entry):
    return type(entry["name"], (), {"GET_NODE_INFO_V1": classmethod(lambda cls: entry)})
nodes.NODE_CLASS_MAPPINGS = {key: stock(entry) for key, entry in json.load(open(dump_path)).items()}
nodes.NODE_CLASS_MAPPINGS.update(module.NODE_CLASS_MAPPINGS)
nodes.NODE_DISPLAY_NAME_MAPPINGS = dict(module.NODE_DISPLAY_NAME_MAPPINGS)
comfy = types.ModuleType("comfy"); utils = types.ModuleType("comfy.utils"); mm = types.ModuleType("comfy.model_management")
class ProgressBar:
    def __init__(self, total, node_id=None): pass
    def update_absolute(self, value, total=None, preview=None): pass
utils.ProgressBar = ProgressBar
mm.throw_exception_if_processing_interrupted = lambda: None
comfy.utils, comfy.model_management = utils, mm
sys.modules.update({"folder_paths": folder_paths, "nodes": nodes, "comfy": comfy, "comfy.utils": utils,
                    "comfy.model_management": mm})
def run(key, unique_id="7", **kwargs):
    cls = module.NODE_CLASS_MAPPINGS[key]
    try:
        return getattr(cls(), cls.FUNCTION)(unique_id=unique_id, **kwargs)
    except Exception as exc:
        return {"error": [type(exc).__name__, str(exc)]}
card = run("reelgraph.image.title_card", text="Hi", width=96, height=160, background="#101820", color="#f2aa4c",
           font_size=0)["result"][0]
i2v = dict(image=card, seconds=1.0, fps=24, width=96, height=160, motion="zoom_in", start_zoom=0.0, end_zoom=0.0,
           easing="ease_in_out", prompt="bees at dawn", seed=3)
out = {"wan": run("reelgraph.video.i2v", model="wan2.1", **i2v),
       "kling": run("reelgraph.video.i2v", model="kling", unique_id="8", **i2v),
       "local": run("reelgraph.video.i2v", model="kenburns", unique_id="9", **i2v)}
if mode == "expand":
    clip = run("reelgraph.video.still", image=card, seconds=1.0, fps=8)["result"][0]
    out["still"] = run("reelgraph.image.generate", prompt="a bee", style="", width=96, height=160, seed=1, model="sdxl",
                       unique_id="10")
    out["interpolate"] = run("reelgraph.video.interpolate", video=clip, fps=24, method="rife", unique_id="11")
    # ComfyUI then runs the stock nodes; the result node gets what the save node would have saved.
    def finish(expansion, media):
        inputs = dict(expansion["expand"][expansion["result"][0][0]]["inputs"])
        inputs["media"] = media
        return run("reelgraph.comfy_result", unique_id="12", **inputs)
    frames = numpy.random.default_rng(5).random((17, 48, 80, 3), dtype=numpy.float32)  # 17 frames at 16 fps
    out["wan_result"] = finish(out["wan"], frames)
    class Components:  # what a core VIDEO gives: Kling's 24 fps clip
        images, frame_rate = numpy.random.default_rng(6).random((30, 40, 72, 3), dtype=numpy.float32), 24
    class Video:
        def get_components(self): return Components()
    out["kling_result"] = finish(out["kling"], Video())
    out["still_result"] = finish(out["still"], numpy.full((1, 64, 40, 3), 0.5, dtype=numpy.float32))
    out["interpolate_result"] = finish(out["interpolate"], frames)
print(json.dumps(out, default=str))
"""


def load(tmp_path: Path, dump_name: str, mode: str) -> dict[str, Any]:
    dump_path = tmp_path / "object_info.json"
    source = full_instance(dump_name).raw if dump_name == WITH_MODELS else raw_dump(dump_name)
    dump_path.write_text(json.dumps(source), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", LOADER, str(REPO), str(tmp_path), str(dump_path), mode],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def probe(path: str) -> dict[str, Any]:
    text = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", path],
                          capture_output=True, text=True, check=True).stdout
    return json.loads(text)["streams"][0]


@pytest.fixture(scope="module")
def expanded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("comfyui")
    return root, load(root, WITH_MODELS, "expand")


def test_comfy_placed_nodes_expand_into_stock_nodes_that_pass_comfyui_validation(expanded):
    root, out = expanded
    info = ObjectInfo({**full_instance(WITH_MODELS).raw, **pack_object_info(pack_declarations())})
    for key, stock in (("wan", "WanImageToVideo"), ("kling", "KlingImage2VideoNode"), ("still", "KSampler"),
                       ("interpolate", "RIFE VFI")):
        expansion = out[key]
        assert "error" not in expansion, expansion
        graph = expansion["expand"]
        classes = {node["class_type"] for node in graph.values()}
        assert stock in classes
        # the save nodes are replaced by the result node, which both outputs come from
        assert not classes & {"SaveVideo", "VHS_VideoCombine", "SaveImage"}
        result_id = expansion["result"][0][0]
        assert expansion["result"] == [[result_id, 0], [result_id, 1]]
        assert graph[result_id]["class_type"] == "reelgraph.comfy_result"
        node_id = result_id.split(".")[0]
        assert all(name.startswith(f"{node_id}.") for name in graph)  # ids no other node of the prompt has
        # an expansion has no output node of its own: the original node's consumers use its result
        consumer = {"class_type": "reelgraph.recipe_output", "inputs": {"value": [result_id, 0]}}
        assert validate_workflow({**graph, "consumer": consumer}, info) == [], key
    # the fitted start image was staged in ComfyUI's input folder, where LoadImage reads it
    loads = [n for n in out["wan"]["expand"].values() if n["class_type"] == "LoadImage"]
    assert (root / "input" / loads[0]["inputs"]["image"]).is_file()
    # Kling's key comes from the frontend's login inside ComfyUI, not from the environment
    assert "COMFY_ORG_API_KEY" not in str(out["kling"])


def test_the_result_node_gives_the_nodes_contract(expanded):
    _, out = expanded
    video, placement = out["wan_result"]["result"]
    stream = probe(video)
    assert (stream["width"], stream["height"], stream["nb_read_frames"], stream["r_frame_rate"]) == (
        96, 160, "24", "24/1")  # 1 s at 24 fps, whatever the model made (17 frames at 16 fps)
    assert placement["placement"] == "comfy" and placement["model"] == "wan2.1"
    assert "wan2.1_i2v_480p_14B_fp16.safetensors" in placement["comfy_model_files"]
    assert out["wan_result"]["ui"]["images"][0]["filename"] == Path(video).name  # previewed on the node
    kling = probe(out["kling_result"]["result"][0])
    assert (kling["width"], kling["height"], kling["nb_read_frames"]) == (96, 160, "24")
    still, still_placement = out["still_result"]["result"]
    from PIL import Image

    with Image.open(still) as image:
        assert image.size == (96, 160) and image.getpixel((48, 80)) == (128, 128, 128)
    assert still_placement["model"] == "sdxl"
    interpolated, interpolation = out["interpolate_result"]["result"]
    assert probe(interpolated)["nb_read_frames"] == "24" and interpolation["method"] == "rife"


def test_local_models_still_run_in_the_node(expanded):
    _, out = expanded
    assert set(out["local"]) == {"ui", "result"} and probe(out["local"]["result"][0])["nb_read_frames"] == "24"


def test_a_missing_model_file_is_refused_naming_the_node_and_the_file(tmp_path):
    out = load(tmp_path, NO_MODELS, "missing")
    kind, message = out["wan"]["error"]
    assert kind == "ReelgraphNodeError"
    assert "video.i2v" in message and "wan2.1_i2v_480p_14B_fp16.safetensors" in message and "this ComfyUI" in message
