"""ComfyUI's own frontend (PyPI ``comfyui-frontend-package``) opens an exported recipe.

The static frontend is served beside the project's ComfyUI-protocol test server (which has the
API routes and serves the pack's schemas as /object_info), headless Chromium loads it, the test
loads the exported workflow through ``app.loadGraphData`` over the DevTools protocol, counts
nodes and links in the page, reads back every widget value and saves a screenshot.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from reelgraph.comfy_workflows.testserver import ComfyTestServer
from reelgraph.graphs.comfy_ui import export_ui, pack_declarations
from reelgraph.comfy_pack.declare import object_info
from reelgraph.graphs.validate import parse_recipe
from reelgraph.tests.helpers import TEMPLATES

frontend = pytest.importorskip("comfyui_frontend_package",
                               reason="ComfyUI's frontend (pip install comfyui-frontend-package) is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
STATIC = Path(frontend.__file__).resolve().parent / "static"


class FrontendServer(ComfyTestServer):
    """The test server plus the static frontend and the few routes the frontend asks for at start
    that the test server does not have (settings, users, userdata, extensions, i18n, ...)."""

    def app(self) -> web.Application:
        app = super().app()

        async def index(_request: web.Request) -> web.StreamResponse:
            return web.FileResponse(STATIC / "index.html")

        async def empty_object(_request: web.Request) -> web.Response:
            return web.json_response({})

        async def settings(_request: web.Request) -> web.Response:  # no first-run template dialog
            return web.json_response({"Comfy.TutorialCompleted": True})

        async def empty_list(_request: web.Request) -> web.Response:
            return web.json_response([])

        async def users(_request: web.Request) -> web.Response:
            return web.json_response({"storage": "server", "migrated": True})

        async def ok(_request: web.Request) -> web.Response:
            return web.json_response({})

        async def missing(_request: web.Request) -> web.Response:
            return web.Response(status=404)

        app.router.add_get("/", index)
        for prefix in ("", "/api"):
            app.router.add_get(prefix + "/settings", settings)
            app.router.add_get(prefix + "/settings/{id}", missing)
            app.router.add_post(prefix + "/settings", ok)
            app.router.add_post(prefix + "/settings/{id}", ok)
            app.router.add_get(prefix + "/users", users)
            app.router.add_get(prefix + "/userdata", empty_list)
            app.router.add_get(prefix + "/v2/userdata", empty_list)
            app.router.add_get(prefix + "/userdata/{file:.*}", missing)
            app.router.add_post(prefix + "/userdata/{file:.*}", ok)
            app.router.add_get(prefix + "/extensions", empty_list)
            app.router.add_get(prefix + "/embeddings", empty_list)
            app.router.add_get(prefix + "/i18n", empty_object)
            for route in ("/global_subgraphs", "/node_replacements", "/workflow_templates"):
                app.router.add_get(prefix + route, empty_object)
            app.router.add_get(prefix + "/experiment/models", empty_list)
        app.router.add_get("/api/{tail:.*}", missing)
        app.router.add_static("/", STATIC)
        return app


class Browser:
    """Headless Chromium driven over the DevTools protocol (websocket-client)."""

    def __init__(self, profile: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--remote-debugging-port={self.port}", "--window-size=1600,1000",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                pages = requests.get(f"http://127.0.0.1:{self.port}/json", timeout=2).json()
                page = next(p for p in pages if p.get("type") == "page")
                break
            except (requests.RequestException, StopIteration, ValueError):
                if time.time() > deadline:
                    raise RuntimeError("Chromium did not open its DevTools port") from None
                time.sleep(0.2)
        import websocket

        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(json.dumps(result["exceptionDetails"])[:2000])
        return result["result"].get("value")

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(10)


WAIT_FOR_APP = """new Promise((resolve, reject) => {
  const started = Date.now();
  const poll = () => {
    if (window.app && window.app.graph && window.app.canvas) resolve(true);
    else if (Date.now() - started > 90000) reject(new Error("the ComfyUI app did not start"));
    else setTimeout(poll, 250);
  };
  poll();
})"""

LOAD = """(async () => {
  const workflow = %s;
  await window.app.loadGraphData(workflow);
  await new Promise(r => setTimeout(r, 1500));
  const graph = window.app.graph;
  const saved = graph.serialize();
  const missing = graph.nodes.filter(n => n.has_errors || !LiteGraph.registered_node_types[n.type]).map(n => n.type);
  return {nodes: graph.nodes.length, links: Object.keys(saved.links).length,
          linked: graph.nodes.reduce((sum, n) => sum + (n.inputs || []).filter(i => i.link != null).length, 0),
          missing, widgets: Object.fromEntries(saved.nodes.map(n => [n.id, n.widgets_values])),
          groups: graph.groups ? graph.groups.length : saved.groups.length};
})()"""


def test_frontend_opens_an_exported_recipe(tmp_path):
    recipe = parse_recipe((TEMPLATES / "explainer.json").read_bytes())
    workflow = export_ui(recipe, None)
    server = FrontendServer(object_info(pack_declarations()), tmp_path / "comfy").start()
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=server.url + "/")
        browser.evaluate(WAIT_FOR_APP)
        page = browser.evaluate(LOAD % json.dumps(workflow))
        time.sleep(1)
        shot = browser.call("Page.captureScreenshot", format="png")
    finally:
        browser.close()
        server.stop()
    screenshot = tmp_path / "explainer.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {screenshot}")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    assert page["missing"] == []
    assert page["nodes"] == len(workflow["nodes"])
    assert page["links"] == len(workflow["links"]) == page["linked"]
    assert page["groups"] == len(workflow["groups"])
    for node in workflow["nodes"]:  # every widget as exported, none added (no control_after_generate)
        assert page["widgets"].get(str(node["id"]), []) == node["widgets_values"], node["type"]
