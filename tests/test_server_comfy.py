"""The Engine API server with ComfyUI instances (`reelgraph serve --comfy URL`): ComfyUI-placed
nodes of submitted recipes run on them, and cancelling a run through the API interrupts its prompts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from reelgraph.comfy_workflows.testserver import ComfyTestServer
from reelgraph.tests.test_comfy_engine import recipe
from reelgraph.tests.test_server_support import (
    ServerProcess,
    start_server,
    stop_quietly,
)


@pytest.fixture
def api(comfy: ComfyTestServer, plugin_path: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    process = start_server(tmp_path / "api", plugin_path, {"REELGRAPH_API_NODE_WORKERS": "2"}, ("--comfy", comfy.url))
    yield process
    stop_quietly(process)


def prompts(comfy: ComfyTestServer) -> list[dict]:
    return list(requests.get(f"{comfy.url}/history", timeout=10).json().values())


def test_submitted_recipes_run_their_comfy_nodes_on_the_servers_instances(api, comfy):
    run_id = api.submit({"recipe": recipe("wan2.1", ["a red fox"])})
    view = api.wait(run_id, timeout=120)
    assert view["status"] == "succeeded", view
    [prompt] = prompts(comfy)  # the i2v (the still is drawn locally by Pillow)
    assert any(node["class_type"] == "WanImageToVideo" for node in prompt["prompt"][2].values())
    again = api.wait(api.submit({"recipe": recipe("wan2.1", ["a red fox"])}), timeout=60)
    assert again["status"] == "succeeded" and len(prompts(comfy)) == 1  # all cached: nothing submitted


def test_a_runs_priority_reaches_comfyuis_own_queue(api, comfy):
    run_id = api.submit({"recipe": recipe("wan2.1", ["a grey heron"]), "priority": 5})
    view = api.wait(run_id, timeout=120)
    assert view["status"] == "succeeded" and view["priority"] == 5
    [prompt] = prompts(comfy)
    assert prompt["prompt"][0] < -4e10  # ahead of every prompt submitted without a priority (numbers 0, 1, ...)
    refused = api.post("/v1/runs", {"recipe": recipe("wan2.1", ["a heron"]), "priority": "high"})
    assert refused.status_code == 422


def test_cancelling_through_the_api_interrupts_the_comfy_prompt(api, comfy):
    requests.post(f"{comfy.url}/admin/faults", json={"hang_on": "KSampler", "hang_interruptible": True}, timeout=10)
    run_id = api.submit({"recipe": recipe("wan2.1", ["a red fox"])})
    deadline = time.monotonic() + 60
    while requests.get(f"{comfy.url}/admin/state", timeout=10).json()["running"] is None:
        assert time.monotonic() < deadline, "the prompt never started"
        time.sleep(0.05)
    assert api.post(f"/v1/runs/{run_id}/cancel").status_code == 202
    assert api.wait(run_id, timeout=60)["status"] == "cancelled"
    state = requests.get(f"{comfy.url}/admin/state", timeout=10).json()
    assert state["running"] is None and state["pending"] == 0
    assert all("execution_interrupted" in [m[0] for m in entry["status"]["messages"]] for entry in prompts(comfy))
