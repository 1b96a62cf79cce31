"""Folder inputs enter cache keys (NodeType.fingerprint): audio.music's library and image.search's
folder provider, with the real engine, real ffmpeg and real files."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reelgraph.engine import Engine
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes import folder_inputs
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.pipeline.images import SEARCH_PROVIDERS, folder_provider_fingerprint, image_search
from reelgraph.nodes.pipeline.music import music
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import Port, node_type
from reelgraph.tests.helpers import executed

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


@node_type("test.audio_size", inputs=[Port("audio", "audio")], outputs=[Port("bytes", "integer")])
def audio_size(ctx: Any, audio: Path) -> dict[str, Any]:
    """Downstream of the music: its output changes exactly when the music's bytes do."""
    return {"bytes": Path(audio).stat().st_size}


@pytest.fixture
def run(engine: Engine, tmp_path: Path) -> Callable[..., Any]:
    registry = NodeRegistry([*BUILTIN_TYPES, music, image_search, audio_size])

    def run_document(document: dict[str, Any], plan: bool = False) -> Any:
        bound = bind_recipe(parse_recipe(document), registry, base_dir=tmp_path)
        return engine.plan(bound) if plan else engine.run(bound)

    return run_document


def music_recipe(library: Path | str) -> dict[str, Any]:
    return {
        "name": "music",
        "nodes": {
            "music": {"type": "audio.music", "inputs": {"seconds": 1.0, "library": str(library)}},
            "size": {"type": "test.audio_size", "inputs": {"audio": {"link": ["music", "audio"]}}},
        },
        "outputs": {"size": {"link": ["size", "bytes"]}},
    }


def tone(path: Path, frequency: int, seconds: float) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"sine=f={frequency}:r=44100:d={seconds}", str(path)],
        check=True,
    )


@needs_ffmpeg
def test_library_changes_rerun_the_music_and_what_depends_on_it(run, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    tone(library / "b.wav", 300, 0.5)
    assert executed(run(music_recipe(library))) == {("music", None), ("size", None)}
    assert executed(run(music_recipe(library))) == set()  # nothing touched: all cached

    (library / "notes.txt").write_text("not audio: the node would not consider it")
    assert executed(run(music_recipe(library))) == set()

    tone(library / "a.wav", 500, 2.0)  # sorts first, so it becomes the track
    planned = {entry.node: entry for entry in run(music_recipe(library), plan=True)}
    assert (planned["music"].status, planned["music"].reason) == ("run", "files in input 'library' changed")
    assert executed(run(music_recipe(library))) == {("music", None), ("size", None)}

    os.utime(library / "b.wav", ns=(1, 1))  # another track's mtime: the music reruns, to identical bytes
    again = run(music_recipe(library))
    assert executed(again) == {("music", None)}
    assert next(e for e in again.executions if e.node == "size").status == "cached"


@needs_ffmpeg
def test_music_without_a_library_keys_as_before(run):
    result = run(music_recipe(""))
    (record,) = [e for e in result.executions if e.node == "music"]
    assert record.key_doc is not None and "fingerprint" not in record.key_doc


def test_missing_folder_fails_the_node_naming_the_input(run, tmp_path):
    missing = tmp_path / "no-such-library"
    planned = {entry.node: entry for entry in run(music_recipe(missing), plan=True)}
    assert planned["music"].status == "run"
    assert "will fail" in planned["music"].reason and f"input 'library': {str(missing)!r} is not a folder" in planned["music"].reason

    result = run(music_recipe(missing))
    assert result.status == "failed"
    (failure,) = [e for e in result.executions if e.status == "failed"]
    assert (failure.node, failure.error["node"], failure.error["step"]) == ("music", "music", "prepare inputs")
    assert f"input 'library': {str(missing)!r} is not a folder" in failure.error["cause"]
    assert next(e for e in result.executions if e.node == "size").status == "skipped"


def test_a_failing_hook_fails_its_node_not_the_run(engine, tmp_path):
    @node_type("test.bad_fingerprint", inputs=[Port("text", "string")], outputs=[Port("text", "string")],
               fingerprint=lambda inputs: {"x": inputs["no such input"]})
    def bad(ctx: Any, text: str) -> dict[str, Any]:
        return {"text": text}

    document = {"name": "bad", "nodes": {"bad": {"type": "test.bad_fingerprint", "inputs": {"text": "t"}}},
                "outputs": {"text": {"link": ["bad", "text"]}}}
    result = engine.run(bind_recipe(parse_recipe(document), NodeRegistry([bad]), base_dir=tmp_path))
    (failure,) = result.executions
    assert failure.status == "failed" and failure.error["step"] == "prepare inputs"
    assert "fingerprint of the inputs failed: KeyError" in failure.error["cause"]


def search_recipe(folder: Path) -> dict[str, Any]:
    return {
        "name": "search",
        "nodes": {
            "queries": {"type": "text.split", "inputs": {"text": "red apple\ngreen tree\nblue sea"}},
            "search": {
                "type": "image.search",
                "inputs": {"query": {"link": ["queries", "items"]}, "folder": str(folder), "width": 64, "height": 64},
            },
        },
        "outputs": {"images": {"link": ["search", "image"]}},
    }


def test_search_folder_is_scanned_once_per_run_and_changes_rerun_the_search(run, tmp_path, monkeypatch):
    folder = tmp_path / "images"
    (folder / "fruit").mkdir(parents=True)
    Image.new("RGB", (80, 80), "red").save(folder / "fruit" / "apple.png")
    scans: list[Path] = []
    real_media_files = folder_inputs.media_files

    def counting(root: Path, *args: Any, **kwargs: Any) -> list[Path]:
        scans.append(root)
        return real_media_files(root, *args, **kwargs)

    monkeypatch.setattr(folder_inputs, "media_files", counting)  # the fingerprint's scan, not the node's
    first = run(search_recipe(folder))
    assert executed(first) == {("queries", None), ("search", 0), ("search", 1), ("search", 2)}
    assert len(scans) == 1  # three executions, one folder, one scan
    assert executed(run(search_recipe(folder))) == set()

    Image.new("RGB", (80, 80), "green").save(folder / "tree.png")  # recursive: subfolders count too
    planned = [entry for entry in run(search_recipe(folder), plan=True) if entry.node == "search"]
    assert {(entry.status, entry.reason) for entry in planned} == {("run", "files in input 'folder' changed")}
    assert executed(run(search_recipe(folder))) == {("search", 0), ("search", 1), ("search", 2)}


def test_search_fingerprints_the_folder_only_when_it_reads_it(tmp_path, monkeypatch):
    for provider in SEARCH_PROVIDERS.values():
        for name in provider.key_envs:
            monkeypatch.delenv(name, raising=False)
    inputs = {"query": "q", "folder": str(tmp_path), "width": 64, "height": 64}
    assert list(folder_provider_fingerprint(inputs | {"provider": "offline"})) == ["files in input 'folder'"]
    assert folder_provider_fingerprint(inputs | {"provider": "auto"})  # no search provider configured: auto reads it
    assert folder_provider_fingerprint(inputs | {"provider": "pexels"}) == {}
    assert folder_provider_fingerprint(inputs | {"provider": "offline", "folder": " "}) == {}
    for name in SEARCH_PROVIDERS["pexels"].key_envs:
        monkeypatch.setenv(name, "key")
    assert folder_provider_fingerprint(inputs | {"provider": "auto"}) == {}  # the folder is only a fallback now
