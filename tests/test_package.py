"""The package imports as `reelgraph`, and also the way ComfyUI loads a custom-node pack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYOUT = ("graphs", "nodes", "engine", "comfy_workflows", "server", "tests")


def test_top_level_layout():
    for folder in LAYOUT:
        assert (REPO / folder / "__init__.py").is_file(), folder


def test_never_importable_under_comfyui_module_names():
    # ComfyUI has its own top-level `nodes`, `server`, `execution`, `comfy`: ours must not shadow them.
    code = (
        "import importlib.util, reelgraph.nodes, reelgraph.server;"
        "print([n for n in ('nodes', 'server', 'engine', 'graphs', 'execution', 'comfy')"
        " if importlib.util.find_spec(n) is not None])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True).stdout
    assert out.strip() == "[]"


def test_loads_like_a_comfyui_custom_node_pack(tmp_path):
    # ComfyUI: spec_from_file_location(<full path with '.' replaced by '_x_'>, <pack>/__init__.py)
    code = f"""
import importlib.util, sys
path = {str(REPO / "__init__.py")!r}
name = {str(REPO).replace(".", "_x_")!r}
spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=[{str(REPO)!r}])
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
assert isinstance(module.NODE_CLASS_MAPPINGS, dict)
engine = importlib.import_module(name + ".engine")
graphs = importlib.import_module(name + ".graphs.validate")
builtin = importlib.import_module(name + ".nodes.builtin")
assert [t.id for t in builtin.NODE_TYPES][:1] == ["text.template"]
assert "reelgraph" not in sys.modules, "the pack must use relative imports only"
print("ok", module.__name__)
""".replace("importlib.import_module", "__import__('importlib').import_module")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok /")
