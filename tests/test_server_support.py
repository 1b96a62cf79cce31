"""Helpers for the Engine API tests: a real ``reelgraph serve`` subprocess on loopback.

The server gets the test node types through the plugin entry point (``plugin_path``) and logs
every test-node execution to its own file, so tests count executions independently of the API.
No tests here; the other ``test_server_*`` modules import from this one.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from reelgraph.tests.helpers import cli_env, logged

WEBHOOK_SECRET = "test-webhook-secret"


class ServerProcess:
    def __init__(self, home: Path, plugin_path: Path, log: Path, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.home = home
        self.log = log
        self.env = {**cli_env(plugin_path, log), "REELGRAPH_WEBHOOK_SECRET": WEBHOOK_SECRET, **(env or {})}
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.token: str | None = None
        self.session = requests.Session()

    def start(self) -> ServerProcess:
        """Start ``reelgraph serve --port 0``; its output goes to a file (a full pipe would block it)."""
        command = [sys.executable, "-m", "reelgraph.cli", "--home", str(self.home), "serve", "--port", "0", *self.args]
        self.home.mkdir(parents=True, exist_ok=True)
        self.output_file = self.home.parent / f"server-{time.monotonic_ns()}.out"
        with open(self.output_file, "w") as out:
            self.proc = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.url:
            found = re.search(r"serving on (http://\S+)", self.output_file.read_text())
            if found:
                self.url = found.group(1)
            elif self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.output}")
            time.sleep(0.05)
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server never became ready: {self.output}")

    @property
    def output(self) -> str:
        return self.output_file.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    # ---- HTTP -------------------------------------------------------------------------------
    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs["headers"] = self.headers(kwargs.get("headers"))
        return self.session.request(method, self.url + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kwargs)

    def submit(self, body: dict[str, Any], **kwargs: Any) -> str:
        response = self.post("/v1/runs", body, **kwargs)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def run(self, run_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait(self, run_id: str, timeout: float = 60, statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled")) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.run(run_id)
            if view["status"] in statuses:
                return view
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} still {view['status']} after {timeout} s")

    def sse(self, run_id: str, headers: dict[str, str] | None = None, after: int | None = None) -> Iterator[dict[str, Any]]:
        """Events of one SSE stream, parsed; ends when the server ends the stream."""
        params = {} if after is None else {"after": after}
        with self.session.get(f"{self.url}/v1/runs/{run_id}/events", headers=self.headers(headers), params=params,
                              stream=True, timeout=60) as response:
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            for raw in response.iter_lines(decode_unicode=True):
                if raw:
                    if not raw.startswith(":"):
                        name, _, value = raw.partition(":")
                        fields[name] = value.strip()
                    continue
                if fields:
                    event = json.loads(fields["data"])
                    assert str(event["id"]) == fields["id"] and event["event"] == fields["event"]
                    yield event
                    fields = {}

    def executions(self, node: str) -> list[tuple[str, int | None]]:
        return [entry for entry in logged(self.log) if entry[0] == node]


def executed(view: dict[str, Any]) -> set[tuple[str, int | None]]:
    """(node, element) pairs the run executed, from its API view."""
    found = set()
    for node in view["nodes"]:
        if node["elements"]:
            found |= {(node["node"], e["element"]) for e in node["elements"] if e["status"] == "executed"}
        elif node["status"] == "executed":
            found.add((node["node"], None))
    return found


def slow_recipe(name: str, items: list[str], seconds: float = 0.05, prefix: str = "") -> dict[str, Any]:
    """split -> test.slow per item -> test.count: one chain per item, one aggregate. ``prefix``
    keeps node ids (and so the execution log) apart between tests sharing a server."""
    split, slow, count = f"{prefix}split", f"{prefix}slow", f"{prefix}count"
    return {
        "name": name,
        "nodes": {
            split: {"type": "text.split", "inputs": {"text": ",".join(items), "separator": ","}},
            slow: {"type": "test.slow", "inputs": {"text": {"link": [split, "items"]}, "seconds": seconds}},
            count: {"type": "test.count", "inputs": {"items": {"link": [slow, "text"]}}},
        },
        "outputs": {"count": {"link": [count, "count"]}, "joined": {"link": [count, "joined"]}},
    }


def start_server(tmp: Path, plugin_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                 token: str | None = None) -> ServerProcess:
    server = ServerProcess(tmp / "home", plugin_path, tmp / "executions.log", env, args)
    server.token = token
    return server.start()


def stop_quietly(server: ServerProcess) -> None:
    if server.proc is not None and server.proc.poll() is None:
        try:
            server.stop(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def metric_sample(text: str, name: str) -> float:
    """One sample's value in a Prometheus text exposition."""
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.rsplit(" ", 1)[1])
