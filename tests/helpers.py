"""Helpers shared by the tests (import as reelgraph.tests.helpers)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reelgraph.engine import RunResult

TEMPLATES = Path(__file__).resolve().parent.parent / "graphs" / "templates"


def executed(result: RunResult) -> set[tuple[str, int | None]]:
    return {(e.node, e.element) for e in result.executions if e.status == "executed"}


def cli_env(plugin_path: Path, log: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_path), env.get("PYTHONPATH", "")])
    env["REELGRAPH_TEST_LOG"] = str(log)
    return env


def read_report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def report_executed(report: dict[str, Any]) -> set[tuple[str, int | None]]:
    return {(e["node"], e["element"]) for e in report["executions"] if e["status"] == "executed"}


def logged(log: Path) -> list[tuple[str, int | None]]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        node, element = line.split("\t")
        rows.append((node, int(element) if element else None))
    return rows
