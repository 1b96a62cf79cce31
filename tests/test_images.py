"""image.generate (local Pillow renderer) and image.search offline: generated stills and a local
folder matched by file name, through the engine."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image, ImageStat
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline.images import NODE_TYPES as IMAGE_TYPES
from reelgraph.nodes.registry import NodeRegistry


@pytest.fixture
def node(engine, tmp_path):
    """Runs one node through the engine; returns (result, {output: value as the node saw it})."""
    registry = NodeRegistry([*BUILTIN_TYPES, *IMAGE_TYPES])

    def go(type_id: str, inputs: dict[str, Any], outputs: tuple[str, ...]):
        document = {"name": "one", "nodes": {"n": {"type": type_id, "inputs": inputs}},
                    "outputs": {name: {"link": ["n", name]} for name in outputs}}
        result = engine.run(bind_recipe(parse_recipe(document), registry, base_dir=tmp_path))
        values = {}
        for name in outputs if result.status == "succeeded" else ():
            value = result.outputs[name].elements[0]
            values[name] = engine.store.blob_path(value["$artifact"]) if isinstance(value, dict) and "$artifact" in value else value
        return result, values

    return go


def generate(node, **inputs: Any) -> bytes:
    result, values = node("image.generate", {"width": 36, "height": 64} | inputs, ("image",))
    assert result.status == "succeeded", result.failures
    return values["image"].read_bytes()


def top_colour(data: bytes) -> tuple[float, ...]:
    with Image.open(io.BytesIO(data)) as image:
        return tuple(ImageStat.Stat(image.crop((0, 0, image.width, 4))).mean)


def test_generate_is_deterministic_per_prompt_style_and_seed(node):
    base = generate(node, prompt="a lighthouse at dusk", style="ink wash")
    assert generate(node, prompt="a lighthouse at dusk", style="ink wash") == base
    assert generate(node, prompt="a lighthouse at dusk", style="ink wash", seed=1) != base
    assert generate(node, prompt="a forest path", style="ink wash") != base
    with Image.open(io.BytesIO(base)) as image:
        assert image.format == "PNG" and image.size == (36, 64) and image.mode == "RGB"
        assert len(image.getcolors(36 * 64) or []) > 20  # an illustration, not a flat fill


def test_a_shared_style_keeps_the_palette_across_scenes(node):
    def distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5

    ink = [top_colour(generate(node, prompt=p, style="ink wash")) for p in ("harbour", "market", "train")]
    neon = top_colour(generate(node, prompt="harbour", style="neon synthwave"))
    within = max(distance(ink[0], other) for other in ink[1:])
    assert within < distance(ink[0], neon)


def test_generate_rejects_impossible_sizes(node):
    result, _ = node("image.generate", {"prompt": "x", "width": 8, "height": 64}, ("image",))
    assert result.failures[0].error["cause"] == "size 8x64 is outside 16..8192 pixels"


def test_offline_search_generates_a_still_of_the_frame_size(node):
    result, values = node("image.search", {"query": "  quiet   harbour ", "width": 40, "height": 70}, ("image", "metadata"))
    assert result.status == "succeeded", result.failures
    assert values["metadata"] == {"title": "quiet harbour", "source_url": "", "page_url": "", "license": "generated",
                                  "width": 40, "height": 70, "provider": "generated", "query": "quiet harbour"}
    with Image.open(values["image"]) as image:
        assert image.size == (40, 70)


def test_offline_search_picks_from_a_folder_by_file_name(node, tmp_path):
    folder = tmp_path / "library"
    (folder / "nature").mkdir(parents=True)
    for name, size in (("red-apple.png", (30, 20)), ("apple pie.webp", (22, 22)), ("nature/green_field-sunset.jpg", (40, 30))):
        Image.new("RGB", size, (90, 160, 60)).save(folder / name)
    (folder / "apple notes.txt").write_text("not an image")

    def pick(query: str) -> dict[str, Any]:
        result, values = node("image.search", {"query": query, "folder": str(folder), "width": 32, "height": 56}, ("image", "metadata"))
        assert result.status == "succeeded", result.failures
        with Image.open(values["image"]) as image:
            assert (image.width, image.height) == (values["metadata"]["width"], values["metadata"]["height"])
        return values["metadata"]

    assert pick("green field at sunset")["title"] == "green_field-sunset"
    apple = pick("fresh apple")  # two names share one word: the first by name wins, every time
    assert apple["title"] == "apple pie" and apple["provider"] == "folder" and apple["license"] == "local file"
    assert apple["source_url"] == (folder / "apple pie.webp").resolve().as_uri()
    assert (apple["width"], apple["height"]) == (22, 22)
    assert pick("nature documentary")["title"] == "green_field-sunset"  # the folder name counts a little
    assert pick("ocean waves")["provider"] == "generated"  # no name matches


def test_offline_search_reports_a_missing_folder_and_bad_files(node, tmp_path):
    result, _ = node("image.search", {"query": "x", "folder": str(tmp_path / "nope")}, ("image",))
    assert result.failures[0].error["cause"] == f"input 'folder': {str(tmp_path / 'nope')!r} is not a folder"
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "cat.png").write_bytes(b"not really a png")
    result, _ = node("image.search", {"query": "cat", "folder": str(folder), "width": 32, "height": 32}, ("image",))
    assert result.failures[0].error["cause"].startswith("input 'folder': folder image cat.png: the bytes are not an image")
