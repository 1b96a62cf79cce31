"""The Engine API over real HTTP on loopback: submit, stream events, fetch outputs, cancel, edit
one node and rerun, plan/validate, webhooks, metrics, and restarts mid-run."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import websocket
from PIL import Image

from reelgraph.tests.helpers import TEMPLATES
from reelgraph.tests.test_server_support import (
    WEBHOOK_SECRET,
    ServerProcess,
    executed,
    metric_sample,
    slow_recipe,
    start_server,
    stop_quietly,
)

needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffprobe"), reason="ffmpeg is not installed")


@pytest.fixture(scope="module")
def server(plugin_path: Path, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    env = {"REELGRAPH_WEBHOOK_ALLOW_PRIVATE": "1", "REELGRAPH_WEBHOOK_BACKOFF": "0.05", "REELGRAPH_API_NODE_WORKERS": "2"}
    process = start_server(tmp_path_factory.mktemp("api"), plugin_path, env)
    yield process
    stop_quietly(process)


def tiny_cards(lines: list[str]) -> dict[str, Any]:
    return {"template": "title-cards", "params": {"lines": "\n".join(lines), "width": 64, "height": 96, "fps": 10, "seconds": 0.3}}


def probe_frames(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    return int(out.strip())


@needs_ffmpeg
def test_submit_then_events_then_outputs(server: ServerProcess, tmp_path: Path) -> None:
    lines = ["first card", "second card", "third"]
    run_id = server.submit({**tiny_cards(lines), "metadata": {"order": 7}})
    events = list(server.sse(run_id))
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "run_queued" and events[1]["event"] == "run_started"
    assert events[-1]["event"] == "run_finished" and events[-1]["status"] == "succeeded"
    chains = {(node, i) for node in ("caption", "card", "clip") for i in range(3)}
    expected = {("lines", None), ("video", None)} | chains
    assert {(e["node"], e["element"]) for e in events if e["event"] == "node_started"} == expected
    assert {(e["node"], e["element"]) for e in events if e["event"] == "node_finished"} == expected

    view = server.run(run_id)
    assert view["status"] == "succeeded" and view["metadata"] == {"order": 7}
    assert view["cost"] == 0.0 and view["cost_unpriced"] == 0  # local work only: nothing billed
    assert view["counts"]["executed"] == 11 and view["counts"]["cached"] == 0 and executed(view) == expected
    card = next(node for node in view["nodes"] if node["node"] == "card")
    assert card["type"] == "image.title_card" and [e["element"] for e in card["elements"]] == [0, 1, 2]

    video = view["outputs"]["video"]
    response = server.get(video["url"])
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    assert len(response.content) == video["size"]
    assert "sha256:" + hashlib.sha256(response.content).hexdigest() == video["$artifact"]
    (tmp_path / "video.mp4").write_bytes(response.content)
    assert probe_frames(tmp_path / "video.mp4") == 3 * 3  # 0.3 s at 10 fps per card

    part = server.get(video["url"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == response.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{video['size']}"
    tail = server.get(video["url"], headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == response.content[-7:]
    beyond = server.get(video["url"], headers={"Range": f"bytes={video['size']}-"})
    assert beyond.status_code == 416 and beyond.json()["error"]["code"] == "range_not_satisfiable"

    png = server.get(view["outputs"]["cards"][1]["url"])
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (64, 96)

    again = server.submit(tiny_cards(lines))
    assert again != run_id
    rerun = server.wait(again)
    assert rerun["counts"]["executed"] == 0 and rerun["counts"]["cached"] == 11 and rerun["cache_hit_ratio"] == 1.0
    assert rerun["outputs"]["video"]["$artifact"] == video["$artifact"]
    cached_events = [e for e in server.sse(again) if e["event"] == "node_cached"]
    assert len(cached_events) == 11 and all(e["status"] == "cached" for e in cached_events)


def test_websocket_stream_and_resuming_from_an_event_id(server: ServerProcess) -> None:
    run_id = server.submit({"recipe": slow_recipe("ws", [f"w{i}" for i in range(6)], 0.1, prefix="ws_")})
    url = server.url.replace("http://", "ws://") + f"/v1/runs/{run_id}/events"
    connection = websocket.create_connection(url, timeout=30)
    first = [json.loads(connection.recv()) for _ in range(4)]
    connection.close()

    connection = websocket.create_connection(f"{url}?after={first[-1]['id']}", timeout=30)
    rest, close_code = [], None
    while close_code is None:
        opcode, data = connection.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            close_code = int.from_bytes(data[:2], "big")
        elif opcode == websocket.ABNF.OPCODE_TEXT:
            rest.append(json.loads(data))
    connection.close()
    events = first + rest
    assert close_code == 1000
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["event"] == "run_finished" and events[-1]["status"] == "succeeded"
    assert sum(e["event"] == "node_finished" and e["node"] == "ws_slow" for e in events) == 6

    tail = list(server.sse(run_id, headers={"Last-Event-ID": str(events[-3]["id"])}))
    assert tail == events[-2:]
    assert list(server.sse(run_id, after=events[-2]["id"])) == events[-1:]


def test_identical_submissions_in_flight_share_one_run(server: ServerProcess) -> None:
    body = {"recipe": slow_recipe("dedupe", [f"d{i}" for i in range(4)], 0.3, prefix="dd_")}
    first = server.post("/v1/runs", body).json()
    second = server.post("/v1/runs", body).json()
    other = server.post("/v1/runs", {**body, "metadata": {"who": "b"}}).json()
    assert second["id"] == first["id"] and second["deduplicated"] and not first["deduplicated"]
    assert other["id"] != first["id"] and not other["deduplicated"]
    views = [server.wait(first["id"]), server.wait(other["id"])]
    assert [v["status"] for v in views] == ["succeeded", "succeeded"]
    assert views[0]["outputs"] == views[1]["outputs"]
    # the separate run shared the node work too: every element executed once in all
    assert sorted(server.executions("dd_slow")) == [("dd_slow", i) for i in range(4)]


def test_idempotency_key_returns_the_first_run(server: ServerProcess) -> None:
    body = {"recipe": slow_recipe("idem", ["i0"], 0.01, prefix="id_")}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = server.post("/v1/runs", body, headers=key)
    server.wait(first.json()["id"])
    second = server.post("/v1/runs", body, headers=key)
    assert second.status_code == 202 and second.json()["id"] == first.json()["id"] and second.json()["replayed"]
    conflict = server.post("/v1/runs", {**body, "metadata": {"x": 1}}, headers=key)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"


def test_cancel_running_and_queued_runs(server: ServerProcess) -> None:
    blockers = [server.submit({"recipe": slow_recipe(f"block{i}", [f"b{i}-{j}" for j in range(8)], 0.4, prefix=f"cx{i}_")})
                for i in range(2)]  # the module's server runs two at once
    queued = server.submit({"recipe": slow_recipe("queued", ["q0"], 0.01, prefix="cq_")})
    for event in server.sse(blockers[0]):
        if event["event"] == "node_finished" and event["node"] == "cx0_slow":
            break
    assert server.run(queued)["status"] == "queued"
    response = server.post(f"/v1/runs/{queued}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert [e["event"] for e in server.sse(queued)] == ["run_queued", "run_finished"]

    for run_id in blockers:
        response = server.post(f"/v1/runs/{run_id}/cancel")
        assert response.status_code == 202 and response.json()["status"] == "cancelling"
    for index, run_id in enumerate(blockers):
        view = server.wait(run_id)
        assert view["status"] == "cancelled"
        assert len(server.executions(f"cx{index}_slow")) < 8
        assert any(node["status"] in ("pending", "not_run") for node in view["nodes"])
    assert server.post(f"/v1/runs/{queued}/cancel").status_code == 409
    assert server.executions("cq_slow") == []


def test_patch_one_scene_reruns_only_its_chain(server: ServerProcess) -> None:
    items = [f"p{i}" for i in range(6)]
    base = server.submit({"recipe": slow_recipe("patch", items, 0.01, prefix="pt_")})
    before = server.wait(base)
    assert executed(before) == {("pt_split", None), ("pt_count", None)} | {("pt_slow", i) for i in range(6)}

    edited = [*items[:3], "p3 edited", *items[4:]]
    response = server.request("PATCH", f"/v1/runs/{base}/nodes/pt_split", json={"inputs": {"text": ",".join(edited)}})
    assert response.status_code == 202, response.text
    assert response.json()["parent_run"] == base and response.json()["id"] != base
    after = server.wait(response.json()["id"])
    assert after["status"] == "succeeded" and after["parent_run"] == base
    assert executed(after) == {("pt_split", None), ("pt_slow", 3), ("pt_count", None)}
    assert after["outputs"]["joined"] == "|".join(item.upper() for item in edited)
    assert server.run(base) == before  # the original run record is unchanged

    unknown_input = server.request("PATCH", f"/v1/runs/{base}/nodes/pt_split", json={"inputs": {"txet": "a"}})
    assert unknown_input.status_code == 422
    [error] = unknown_input.json()["error"]["errors"]
    assert error["node"] == "pt_split" and error["path"] == "nodes.pt_split.inputs.txet" and "did you mean 'text'" in error["message"]
    assert server.request("PATCH", f"/v1/runs/{base}/nodes/nope", json={"regenerate": True}).status_code == 404
    deterministic = server.request("PATCH", f"/v1/runs/{base}/nodes/pt_slow", json={"regenerate": True})
    assert deterministic.status_code == 422 and "deterministic" in deterministic.json()["error"]["message"]
    assert server.request("PATCH", f"/v1/runs/{base}/nodes/pt_slow", json={}).status_code == 422


def test_regenerate_a_non_deterministic_node(server: ServerProcess) -> None:
    recipe = {
        "name": "regen",
        "nodes": {
            "rg_random": {"type": "test.random", "inputs": {"prompt": "idea"}},
            "rg_after": {"type": "test.slow", "inputs": {"text": {"link": ["rg_random", "text"]}, "seconds": 0.01}},
            "rg_other": {"type": "test.slow", "inputs": {"text": "unrelated", "seconds": 0.01}},
        },
        "outputs": {"text": {"link": ["rg_after", "text"]}, "other": {"link": ["rg_other", "text"]}},
    }
    first = server.wait(server.submit({"recipe": recipe}))
    response = server.request("PATCH", f"/v1/runs/{first['id']}/nodes/rg_random", json={"regenerate": True})
    assert response.status_code == 202
    second = server.wait(response.json()["id"])
    assert executed(second) == {("rg_random", None), ("rg_after", None)}
    assert second["outputs"]["text"] != first["outputs"]["text"]
    assert second["outputs"]["other"] == first["outputs"]["other"]


def test_invalid_recipes_get_422_with_the_cli_error_list(server: ServerProcess, cli: Any, tmp_path: Path) -> None:
    document = json.loads((TEMPLATES / "title-cards.json").read_text())
    document["nodes"]["card"]["type"] = "image.title_crad"
    document["nodes"]["clip"]["inputs"]["fps"] = "thirty"
    document["nodes"]["video"]["inputs"]["clips"] = {"link": ["clip", "vid"]}
    response = server.post("/v1/runs", {"recipe": document})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_recipe" and error["message"] == "the recipe has 3 errors"

    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    printed = json.loads(cli("validate", str(path), "--json", check_code=2).stdout)
    assert error["errors"] == printed["errors"]
    assert {(e["node"], e["path"]) for e in error["errors"]} == {
        ("card", "nodes.card.type"), ("clip", "nodes.clip.inputs.fps"), ("video", "nodes.video.inputs.clips")}

    validated = server.post("/v1/validate", {"recipe": document})
    assert validated.status_code == 200 and validated.json() == {"valid": False, "nodes": None, "outputs": [], "errors": printed["errors"]}
    good = server.post("/v1/validate", {"template": "title-cards"}).json()
    assert good["valid"] and good["nodes"] == 5 and set(good["outputs"]) == {"video", "cards"}

    params = server.post("/v1/runs", {"template": "title-cards", "params": {"width": "wide", "colour": "red", "fps": 0}})
    assert params.status_code == 422
    assert {(e["kind"], e["path"]) for e in params.json()["error"]["errors"]} == {
        ("bad_param_value", "params.width"), ("unknown_param", "params.colour"), ("bad_param_value", "params.fps")}
    unknown = server.post("/v1/runs", {"template": "no-such-template"})
    assert unknown.status_code == 422 and unknown.json()["error"]["errors"][0]["kind"] == "unknown_template"
    both = server.post("/v1/runs", {"template": "title-cards", "recipe": document})
    assert both.status_code == 422 and "exactly one" in both.json()["error"]["message"]
    options = server.post("/v1/runs", {"template": "title-cards", "outputs": ["vidoe"], "force": ["crad"]})
    assert [e["path"] for e in options.json()["error"]["errors"]] == ["outputs.0", "force.0"]


@needs_ffmpeg
def test_plan_reports_cached_and_dirty_work(server: ServerProcess) -> None:
    lines = ["plan one", "plan two"]
    server.wait(server.submit(tiny_cards(lines)))
    plan = server.post("/v1/plan", tiny_cards(lines)).json()
    assert plan["counts"] == {"cached": 8, "run": 0, "waits": 0} and plan["cost"] == 0.0 and plan["cost_note"]
    assert {step["status"] for step in plan["steps"]} == {"cached"}

    dirty = server.post("/v1/plan", {**tiny_cards([lines[0], "plan TWO"]), "force": ["video"]}).json()
    by_node = {(s["node"], s["element"]): s for s in dirty["steps"]}
    assert by_node[("lines", None)]["status"] == "run" and by_node[("caption", None)]["status"] == "waits"
    assert dirty["counts"]["run"] >= 1 and dirty["counts"]["waits"] >= 1


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    failures_left = 2

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        failing = type(self).failures_left > 0
        type(self).failures_left -= 1
        self.send_response(503 if failing else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhook_is_signed_retried_and_carries_metadata(server: ServerProcess) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/reelgraph"
        run_id = server.submit({"recipe": slow_recipe("hook", ["h0", "h1"], 0.01, prefix="wh_"),
                                "webhook_url": url, "metadata": {"order": "A-17"}})
        deadline = time.monotonic() + 30
        while len(_Receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        view = server.run(run_id)
    finally:
        receiver.shutdown()
    assert len(_Receiver.received) == 3  # two 503s, then accepted
    for headers, body in _Receiver.received:
        stamp, signature = (part.split("=", 1)[1] for part in headers["reelgraph-signature"].split(","))
        expected = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected)
        assert abs(int(stamp) - time.time()) < 60
        assert headers["reelgraph-delivery"] == run_id and headers["reelgraph-event"] == "run.finished"
    payload = json.loads(_Receiver.received[-1][1])
    assert payload["event"] == "run.finished" and payload["run"]["id"] == run_id
    assert payload["run"]["metadata"] == {"order": "A-17"} and payload["run"]["status"] == "succeeded"
    assert payload["run"]["outputs"]["joined"] == "H0|H1"
    assert view["webhook"] == {"url": url, "state": "delivered", "attempts": 3, "last_error": None}
    metrics = server.get("/metrics").text
    assert metric_sample(metrics, 'reelgraph_retries_total{kind="webhook"}') >= 2
    assert metric_sample(metrics, 'reelgraph_webhook_deliveries_total{outcome="delivered"}') >= 1


def test_templates_openapi_health_and_metrics(server: ServerProcess) -> None:
    listed = server.get("/v1/templates").json()["templates"]
    cards = next(t for t in listed if t["name"] == "title-cards")
    assert cards["params_schema"]["properties"]["width"] == {
        "x-reelgraph-type": "integer", "type": "integer", "description": "Video width in pixels (even)",
        "default": 1080, "minimum": 16, "maximum": 4096}
    detail = server.get("/v1/templates/title-cards").json()
    assert detail["nodes"] == 5 and detail["recipe"]["nodes"]["card"]["type"] == "image.title_card"
    missing = server.get("/v1/templates/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert server.get("/v1/schema/recipe").json()["$id"].endswith("recipe-v1.json")

    spec = server.get("/v1/openapi.json").json()
    assert {"/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/events", "/v1/runs/{run_id}/cancel",
            "/v1/runs/{run_id}/nodes/{node_id}", "/v1/plan", "/v1/validate", "/v1/templates",
            "/v1/templates/{name}", "/v1/artifacts/{digest}"} <= set(spec["paths"])
    assert server.get("/healthz").json() == {"status": "ok", "queue_depth": None}
    assert server.get("/readyz").json()["status"] == "ready"

    server.wait(server.submit({"recipe": slow_recipe("metrics", ["m0"], 0.01, prefix="mt_")}))
    metrics = server.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert metric_sample(text, 'reelgraph_runs{status="succeeded"}') >= 1
    assert metric_sample(text, "reelgraph_queue_depth") == 0
    assert metric_sample(text, 'reelgraph_node_executions_total{status="executed"}') >= 3
    assert 0 < metric_sample(text, "reelgraph_cache_hit_ratio") < 1
    assert metric_sample(text, 'reelgraph_node_duration_seconds_count{status="executed",type="test.slow"}') >= 1
    listed_runs = server.get("/v1/runs", params={"limit": 2, "status": "succeeded"}).json()["runs"]
    assert len(listed_runs) == 2 and all(run["status"] == "succeeded" for run in listed_runs)
    assert listed_runs[0]["submitted_at"] >= listed_runs[1]["submitted_at"]


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_restart_mid_run_finishes_without_redoing_finished_nodes(plugin_path: Path, tmp_path: Path, how: str) -> None:
    env = {"REELGRAPH_API_NODE_WORKERS": "2"}
    items = [f"r{i}" for i in range(12)]
    first = start_server(tmp_path, plugin_path, env)
    try:
        run_id = first.submit({"recipe": slow_recipe("restart", items, 0.3)})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the server has recorded four finished elements
            slow = next(node for node in first.run(run_id)["nodes"] if node["node"] == "slow")
            if sum(element["status"] == "executed" for element in slow["elements"]) >= 4:
                break
            time.sleep(0.02)
        code = first.stop(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
    finally:
        stop_quietly(first)
    # after a graceful shutdown uvicorn re-raises the signal it caught, so SIGTERM is the exit status too
    assert code == (-signal.SIGKILL if how == "sigkill" else -signal.SIGTERM)
    done_before = len(first.executions("slow"))
    assert 4 <= done_before < 12

    second = start_server(tmp_path, plugin_path, env)  # same home, same execution log
    try:
        view = second.wait(run_id)
        events = list(second.sse(run_id))
        if how == "sigterm":  # a second server on the same home is refused while this one runs
            third = subprocess.run([*_serve_command(second)], env=second.env, capture_output=True, text=True, timeout=60)
            assert third.returncode == 2 and "another reelgraph server is using" in third.stderr
    finally:
        stop_quietly(second)
    assert view["status"] == "succeeded" and view["attempts"] == 2
    assert view["outputs"]["joined"] == "|".join(item.upper() for item in items)

    finished = [e for e in events if e["event"] in ("node_finished", "node_cached")]
    first_attempt = {(e["node"], e["element"]) for e in finished if e["attempt"] == 1 and e["status"] == "executed"}
    second_attempt = {(e["node"], e["element"]) for e in finished if e["attempt"] == 2 and e["status"] == "executed"}
    resumed_cached = {(e["node"], e["element"]) for e in finished if e["attempt"] == 2 and e["status"] == "cached"}
    assert len(first_attempt) >= 4 and not first_attempt & second_attempt
    assert first_attempt <= resumed_cached  # what had finished came back from the cache
    assert first_attempt | second_attempt == {("split", None), ("count", None)} | {("slow", i) for i in range(12)}
    log = second.executions("slow")
    assert set(log) == {("slow", i) for i in range(12)}
    if how == "sigterm":
        assert sorted(log) == [("slow", i) for i in range(12)]  # nothing ran twice
        assert "run_interrupted" in [e["event"] for e in events]
    else:
        assert len(log) <= 12 + 2  # at most the executions in flight at the kill repeat
    assert executed(view) == first_attempt | second_attempt


def _serve_command(server: ServerProcess) -> list[str]:
    return [sys.executable, "-m", "reelgraph.cli", "--home", str(server.home), "serve", "--port", "0"]
