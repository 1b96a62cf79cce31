"""Workflows read back from the images and videos ComfyUI writes (PNG tEXt, WEBP EXIF, MP4 tags,
VideoHelperSuite's first-frame PNG beside the video)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from reelgraph.graphs.comfy_media import read_embedded_workflow
from reelgraph.graphs.comfy_ui import export_ui, import_workflow
from reelgraph.graphs.errors import RecipeInvalid
from reelgraph.graphs.validate import parse_recipe
from reelgraph.tests.helpers import TEMPLATES

RECIPE = parse_recipe((TEMPLATES / "title-cards.json").read_bytes())
WORKFLOW = export_ui(RECIPE, None)
PROMPT = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}}


def png(path: Path, **texts: str) -> Path:
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    Image.new("RGB", (64, 112), "navy").save(path, pnginfo=info)
    return path


def mp4(path: Path, **tags: str) -> Path:
    command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=navy:s=64x112:r=10:d=0.5",
               "-pix_fmt", "yuv420p", "-movflags", "use_metadata_tags"]
    for key, value in tags.items():
        command += ["-metadata", f"{key}={value}"]
    subprocess.run([*command, str(path)], check=True, capture_output=True)
    return path


def test_png_text_chunks_prefer_the_ui_workflow(tmp_path):
    kind, document = read_embedded_workflow(png(tmp_path / "out.png", prompt=json.dumps(PROMPT),
                                                workflow=json.dumps(WORKFLOW)))
    assert kind == "workflow" and document == WORKFLOW
    recipe = import_workflow(document, None)
    assert recipe.model_dump(mode="json") == RECIPE.model_dump(mode="json")
    kind, document = read_embedded_workflow(png(tmp_path / "api.png", prompt=json.dumps(PROMPT)))
    assert (kind, document) == ("prompt", PROMPT)


def test_webp_exif_as_save_animated_webp_writes_it(tmp_path):
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(PROMPT)
    exif[0x010F] = "workflow:" + json.dumps(WORKFLOW)
    path = tmp_path / "anim.webp"
    Image.new("RGB", (64, 112), "navy").save(path, exif=exif)
    assert read_embedded_workflow(path) == ("workflow", WORKFLOW)


@pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="ffmpeg is not installed")
def test_mp4_tags_and_the_vhs_side_png(tmp_path):
    tagged = mp4(tmp_path / "clip.mp4", prompt=json.dumps(PROMPT), workflow=json.dumps(WORKFLOW))
    assert read_embedded_workflow(tagged) == ("workflow", WORKFLOW)
    bare = mp4(tmp_path / "vhs_00001.mp4")
    with pytest.raises(RecipeInvalid, match="vhs_00001.png"):
        read_embedded_workflow(bare)
    png(tmp_path / "vhs_00001.png", workflow=json.dumps(WORKFLOW), prompt=json.dumps(PROMPT))
    assert read_embedded_workflow(bare) == ("workflow", WORKFLOW)


@pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="ffmpeg is not installed")
def test_cli_imports_a_recipe_from_a_video(cli, tmp_path):
    mp4(tmp_path / "clip.mp4", workflow=json.dumps(WORKFLOW))
    cli("import", "clip.mp4", "-o", "recipe.json", check_code=0)
    imported = json.loads((tmp_path / "recipe.json").read_text())
    assert parse_recipe(imported).model_dump(mode="json") == RECIPE.model_dump(mode="json")
    png(tmp_path / "plain.png")
    proc = cli("import", "plain.png")
    assert proc.returncode == 2 and "carries no ComfyUI workflow" in proc.stderr
