"""The repository as a ComfyUI node pack: loaded the way ComfyUI loads packs, cheap to load, its
schemas valid for ComfyUI's validator, and its nodes running the same implementations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reelgraph.comfy_pack import MANIFEST
from reelgraph.comfy_pack.declare import declare_all, object_info
from reelgraph.comfy_pack.manifest import current, render
from reelgraph.comfy_pack.plugins import ENTRY_POINT_GROUP, cache_path, reelgraph_home
from reelgraph.comfy_workflows.schema import ObjectInfo, check_prompt
from reelgraph.engine import default_home
from reelgraph.graphs.comfy_ui import (
    combined_info,
    pack_declarations,
    recipe_to_ui,
    ui_to_api,
)
from reelgraph.graphs.validate import parse_recipe
from reelgraph.nodes.registry import ENTRY_POINT_GROUP as REGISTRY_GROUP
from reelgraph.nodes.registry import NodeRegistry, default_registry
from reelgraph.tests.helpers import TEMPLATES, cli_env
from reelgraph.tests.plugins.testnodes import NODE_TYPES as TEST_TYPES
from reelgraph.tests.plugins.testnodes import short_hash

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "PIL", "requests", "ffmpeg", "pydantic", "networkx")

# Loads the pack exactly like ComfyUI's nodes.load_custom_node, with stand-ins for the two ComfyUI
# modules the pack touches while executing (folder_paths for the temp folder, comfy.utils for
# progress), then prints what ComfyUI's /object_info would show and runs a few nodes.
LOADER = r"""
import importlib.util, json, sys, types, time
repo, temp, mode = sys.argv[1], sys.argv[2], sys.argv[3]
name = repo.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(name, repo + "/__init__.py", submodule_search_locations=[repo])
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
mappings = module.NODE_CLASS_MAPPINGS
names = module.NODE_DISPLAY_NAME_MAPPINGS
loaded = sorted({m.split(".")[0] for m in sys.modules})
if mode == "load":
    def node_info(key, cls):  # ComfyUI server.py node_info for V1 classes
        inputs = cls.INPUT_TYPES()
        return {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()},
                "is_input_list": getattr(cls, "INPUT_IS_LIST", False),
                "output": cls.RETURN_TYPES, "output_is_list": list(cls.OUTPUT_IS_LIST),
                "output_name": cls.RETURN_NAMES, "output_tooltips": cls.OUTPUT_TOOLTIPS, "name": key,
                "display_name": names[key], "description": cls.DESCRIPTION, "python_module": "custom_nodes.reelgraph",
                "category": cls.CATEGORY, "output_node": cls.OUTPUT_NODE}
    print(json.dumps({"modules": loaded, "info": {k: node_info(k, c) for k, c in mappings.items()},
                      "function": sorted({c.FUNCTION for c in mappings.values()})}))
    sys.exit()
folder_paths = types.ModuleType("folder_paths")
folder_paths.get_temp_directory = lambda: temp
sys.modules["folder_paths"] = folder_paths
progress = []
comfy = types.ModuleType("comfy"); utils = types.ModuleType("comfy.utils"); mm = types.ModuleType("comfy.model_management")
class ProgressBar:
    def __init__(self, total, node_id=None): self.node_id = node_id
    def update_absolute(self, value, total=None, preview=None): progress.append([self.node_id, value, total])
utils.ProgressBar = ProgressBar
mm.throw_exception_if_processing_interrupted = lambda: None
comfy.utils, comfy.model_management = utils, mm
sys.modules.update({"comfy": comfy, "comfy.utils": utils, "comfy.model_management": mm})
def run(key, **kwargs):
    cls = mappings[key]
    return getattr(cls(), cls.FUNCTION)(unique_id="7", **kwargs)
if mode == "plugin":
    mixed = run("reelgraph.test.mix", salt="s", a="x", b="", c="", squash=False)
    try:
        run("reelgraph.test.slow", text="boom", seconds=0.0)
        failure = None
    except Exception as exc:
        failure = [type(exc).__name__, str(exc)]
    print(json.dumps({"mixed": mixed, "failure": failure}))
    sys.exit()
card = run("reelgraph.image.title_card", text="Hi", width=64, height=112, background="#101820", color="#f2aa4c", font_size=0)
still = run("reelgraph.video.still", image=card["result"][0], seconds=0.5, fps=10)
text = run("reelgraph.text.template", template="{text}!", text="bees", values="")
items = run("reelgraph.json.items", value='[1, 2, 3]')
joined = run("reelgraph.text.join", items=['["a", "b"]'], separator=["+"])
linked = run("reelgraph.text.join", items=["a", "b", "c"], separator=["+"])
script = run("reelgraph.script.llm", topic="bees", script="", use_case="story", provider="offline", scenes=2,
             seconds_per_scene=3.0, style="")
speech = run("reelgraph.audio.tts", text="Hello bees.", provider="offline", voice="", speed=1.0)
param = run("reelgraph.recipe_param.json", value='{"a": 1}', description="", constraints="")
output = run("reelgraph.recipe_output", value=still["result"][0])
try:
    run("reelgraph.image.title_card", text="Hi", width=63, height=112, background="#101820", color="#f2aa4c", font_size=0)
    failure = None
except Exception as exc:
    failure = [type(exc).__name__, str(exc)]
print(json.dumps({"card": card, "still": still, "text": text, "items": items, "joined": joined, "linked": linked,
                  "scenes": len(script["result"][2]), "speech": speech, "param": param, "output": output, "progress": progress,
                  "failure": failure}))
"""


def load(mode: str, tmp_path: Path, env: dict[str, str] | None = None) -> dict:
    return load_with_log(mode, tmp_path, env)[0]


def load_with_log(mode: str, tmp_path: Path, env: dict[str, str] | None = None) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", LOADER, str(REPO), str(tmp_path), mode],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def test_manifest_is_current():
    assert MANIFEST.read_text(encoding="utf-8") == render(current()), (
        "comfy_pack/manifest.json is stale: run python -m reelgraph.comfy_pack.manifest")


def test_pack_loads_like_comfyui_and_registers_every_node_type(tmp_path):
    loaded = load("load", tmp_path)
    assert [m for m in HEAVY if m in loaded["modules"]] == []  # ComfyUI's start stays cheap
    info = loaded["info"]
    registry = default_registry()
    builtin = [t for t in registry.ids() if not t.startswith("test.")]
    assert {f"reelgraph.{t}" for t in builtin} <= set(info)
    assert all(key.startswith("reelgraph.") for key in info)
    for type_id in builtin:
        node_type = registry.get(type_id)
        entry = info[f"reelgraph.{type_id}"]
        assert entry["category"] == f"reelgraph/{node_type.category}"
        assert entry["output_name"] == [p.name for p in node_type.outputs]
        assert entry["output_is_list"] == [p.is_list for p in node_type.outputs]
        assert entry["is_input_list"] == any(p.is_list for p in node_type.inputs)
        declared = {**entry["input"]["required"], **entry["input"].get("optional", {})}
        assert list(declared) == [p.name for p in node_type.inputs if not p.optional] + [
            p.name for p in node_type.inputs if p.optional]
        for port in node_type.inputs:
            assert port.description in declared[port.name][1]["tooltip"]
    # what the classes say is what the converter reads
    assert json.loads(json.dumps(object_info(pack_declarations()))) == info
    assert loaded["function"] == ["run"]


def test_exported_recipes_pass_comfyui_validation_against_the_pack(tmp_path):
    info = ObjectInfo(load("load", tmp_path)["info"])
    declarations = pack_declarations()
    for path in TEMPLATES.glob("*.json"):
        recipe = parse_recipe(path.read_bytes())
        ui = recipe_to_ui(recipe, combined_info(None, declarations), declarations)
        prompt = ui_to_api(ui, info)
        check = check_prompt(prompt, info)
        assert check.ok and check.node_errors == {}, check.errors()
        assert len(check.good_outputs) == len(recipe.outputs)


def test_pack_nodes_run_the_engine_implementations_with_previews_and_progress(tmp_path):
    result = load("run", tmp_path)
    card = Path(result["card"]["result"][0])
    assert card.is_file() and card.resolve().is_relative_to(tmp_path.resolve())
    assert result["card"]["ui"]["images"] == [{"filename": card.name, "subfolder": str(card.parent.relative_to(tmp_path)),
                                               "type": "temp"}]
    video = Path(result["still"]["result"][0])
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(video)],
                                      capture_output=True, text=True, check=True).stdout)
    assert probe["streams"][0]["width"] == 64 and probe["streams"][0]["height"] == 112
    assert result["still"]["ui"]["animated"] == [True] and result["still"]["ui"]["images"][0]["filename"] == video.name
    assert result["text"] == {"ui": {"text": ["bees!"]}, "result": ["bees!"]}
    assert result["items"]["result"] == [[1, 2, 3]]  # OUTPUT_IS_LIST: a list ComfyUI fans out
    assert result["joined"]["result"] == ["a+b"]  # the widget's JSON text
    assert result["linked"]["result"] == ["a+b+c"]  # the elements of an upstream list
    assert result["scenes"] == 2
    assert result["param"]["result"] == [{"a": 1}]
    assert result["output"]["ui"]["images"][0]["filename"] == video.name
    assert [value for node, value, _ in result["progress"] if node == "7"] == [100, 800]  # tts: 0.1, then 0.8
    assert result["speech"]["ui"]["audio"][0]["filename"].endswith(".wav") and result["speech"]["result"][1] > 0
    assert result["failure"][0] == "ReelgraphNodeError" and "even" in result["failure"][1]


def test_plugin_node_types_join_the_pack_without_importing_plugins_at_start(tmp_path, plugin_path):
    """A plugin published through the ``reelgraph.nodes`` entry points becomes pack nodes. ComfyUI's
    process reads only distribution metadata at start: the declarations come from a child process
    once, then from the cache; the plugin's code loads when one of its nodes runs."""
    env = {**cli_env(plugin_path, tmp_path / "log"), "REELGRAPH_HOME": str(tmp_path / "home")}
    first, log = load_with_log("load", tmp_path, env)
    assert f"declared {len(TEST_TYPES)} plugin node type(s) of 1 plugin(s)" in log
    assert [m for m in (*HEAVY, "reelgraph") if m in first["modules"]] == []  # no plugin code, no heavy modules
    registry = NodeRegistry(TEST_TYPES)
    expected = object_info([{**d, "plugin": True} for d in declare_all(registry.get(t) for t in registry.ids())])
    plugin_classes = {k: v for k, v in json.loads(json.dumps(expected)).items() if k.startswith("reelgraph.test.")}
    assert {k: v for k, v in first["info"].items() if k.startswith("reelgraph.test.")} == plugin_classes
    assert {f"reelgraph.{t}" for t in default_registry().ids()} <= set(first["info"])  # the built-ins as before
    again, log = load_with_log("load", tmp_path, env)
    assert "declared" not in log and again["info"] == first["info"]  # from the cache: no child process
    ran = load("plugin", tmp_path, env)
    assert ran["mixed"]["result"] == [short_hash("s", "x", None, None)]
    assert ran["failure"] == ["ReelgraphNodeError", "test.slow: refusing to process 'boom'"]
    # a changed plugin (here: its RECORD) is declared again
    (plugin_path / "reelgraph_testnodes-0.0.dist-info" / "RECORD").write_text("testnodes.py,,\n")
    try:
        _, log = load_with_log("load", tmp_path, env)
        assert f"declared {len(TEST_TYPES)} plugin node type(s)" in log
    finally:
        (plugin_path / "reelgraph_testnodes-0.0.dist-info" / "RECORD").unlink()


def test_plugin_cache_lives_in_the_engine_home(monkeypatch, tmp_path):
    assert ENTRY_POINT_GROUP == REGISTRY_GROUP
    for variable, value in (("REELGRAPH_HOME", str(tmp_path / "a")), ("XDG_CACHE_HOME", str(tmp_path / "b"))):
        monkeypatch.setenv(variable, value)
        assert reelgraph_home() == default_home() and cache_path().is_relative_to(default_home())
