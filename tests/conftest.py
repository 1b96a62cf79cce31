"""Shared fixtures: an isolated engine home, a registry with the test node types, and a real
entry-point installation of those types for CLI subprocesses."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reelgraph.engine import Engine, RunOptions, RunResult
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin import NODE_TYPES as BUILTIN_TYPES
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.tests.comfy_server_fixtures import comfy  # noqa: F401  (the ComfyUI test server)
from reelgraph.tests.helpers import cli_env
from reelgraph.tests.loopback_http import loopback  # noqa: F401  (fixture shared by provider tests)
from reelgraph.tests.plugins.testnodes import NODE_TYPES as TEST_TYPES

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def registry() -> NodeRegistry:
    return NodeRegistry([*BUILTIN_TYPES, *TEST_TYPES])


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    instance = Engine(tmp_path / "home")
    yield instance
    instance.close()


@pytest.fixture
def run_recipe(engine: Engine, registry: NodeRegistry, tmp_path: Path) -> Callable[..., RunResult]:
    def run(document: dict[str, Any], params: dict[str, Any] | None = None, **options: Any) -> RunResult:
        bound = bind_recipe(parse_recipe(document), registry, params, base_dir=tmp_path)
        return engine.run(bound, RunOptions(**options))

    return run


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a dist-info that publishes the test node types as a real plugin."""
    site = tmp_path_factory.mktemp("plugin-site")
    dist = site / "reelgraph_testnodes-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reelgraph-testnodes\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[reelgraph.nodes]\ntestnodes = reelgraph.tests.plugins.testnodes:NODE_TYPES\n")
    return site


@pytest.fixture
def cli(tmp_path: Path, plugin_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs the real ``reelgraph`` command in a subprocess with an isolated home."""
    home = tmp_path / "cli-home"
    log = tmp_path / "executions.log"

    def invoke(*args: str, check_code: int | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "reelgraph.cli", "--home", str(home), *args],
            capture_output=True,
            text=True,
            env=cli_env(plugin_path, log),
            cwd=tmp_path,
            timeout=300,
            **kwargs,
        )
        if check_code is not None:
            assert proc.returncode == check_code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    invoke.home = home  # type: ignore[attr-defined]
    invoke.log = log  # type: ignore[attr-defined]
    return invoke


