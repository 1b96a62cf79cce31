"""Engine API limits and defences over real HTTP: bearer tokens, rate limits, body and graph
size, artifact ids, file literals, webhook targets, bad JSON, and the one error shape."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from reelgraph.tests.test_server_support import ServerProcess, slow_recipe, start_server, stop_quietly

TOKENS = "token-alpha,token-beta"


@pytest.fixture(scope="module")
def server(plugin_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"REELGRAPH_API_TOKENS": TOKENS, "REELGRAPH_API_MAX_BODY": "20000", "REELGRAPH_API_MAX_NODES": "10"}
    process = start_server(tmp_path_factory.mktemp("secure"), plugin_path, env, token="token-alpha")
    yield process
    stop_quietly(process)


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "errors"}
    assert body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in response.text
    return dict(body["error"])


def test_bearer_token_required_on_every_api_route(server: ServerProcess) -> None:
    for method, path in [("GET", "/v1/runs"), ("POST", "/v1/runs"), ("GET", "/v1/templates"), ("POST", "/v1/validate"),
                         ("GET", "/v1/artifacts/sha256:" + "0" * 64), ("GET", "/metrics"), ("GET", "/v1/runs/abc/events")]:
        anonymous = requests.request(method, server.url + path, json={}, timeout=10)
        assert_error(anonymous, 401, "unauthorized")
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        wrong = requests.request(method, server.url + path, json={}, headers={"Authorization": "Bearer token-gamma"}, timeout=10)
        assert_error(wrong, 401, "unauthorized")
    assert server.get("/v1/runs").status_code == 200
    assert requests.get(server.url + "/v1/runs", headers={"Authorization": "Bearer token-beta"}, timeout=10).status_code == 200
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200  # probes need no token
    assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
    # a query-string token is for event streams only (EventSource cannot set headers)
    assert_error(requests.get(server.url + "/v1/runs?access_token=token-alpha", timeout=10), 401, "unauthorized")


def test_event_streams_accept_a_query_token_and_refuse_none(server: ServerProcess) -> None:
    run_id = server.submit({"recipe": slow_recipe("auth-ws", ["a"], 0.01, prefix="aw_")})
    server.wait(run_id)
    streamed = requests.get(f"{server.url}/v1/runs/{run_id}/events?access_token=token-beta", timeout=10)
    assert streamed.status_code == 200 and "event: run_finished" in streamed.text

    url = server.url.replace("http://", "ws://") + f"/v1/runs/{run_id}/events"
    refused = websocket.create_connection(url, timeout=10)
    message = json.loads(refused.recv())
    opcode, data = refused.recv_data(control_frame=True)
    assert message["error"]["code"] == "unauthorized"
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 4401
    allowed = websocket.create_connection(url, header=["Authorization: Bearer token-alpha"], timeout=10)
    assert json.loads(allowed.recv())["event"] == "run_queued"
    allowed.close()


def test_request_body_and_graph_size_limits(server: ServerProcess) -> None:
    big = {"template": "title-cards", "params": {"lines": "x" * 30000}}
    assert_error(server.post("/v1/runs", big), 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"template": "title-cards", "params": {"lines": "'
        for _ in range(30):
            yield b"y" * 1000
        yield b'"}}'

    chunked = server.request("POST", "/v1/runs", data=chunks(), headers={"Content-Type": "application/json"})
    assert_error(chunked, 413, "too_large")

    nodes = {f"n{i}": {"type": "text.split", "inputs": {"text": "a"}} for i in range(11)}
    error = assert_error(server.post("/v1/runs", {"recipe": {"nodes": nodes}}), 413, "too_large")
    assert "at most 10" in error["message"]
    assert server.post("/v1/validate", {"recipe": {"nodes": dict(list(nodes.items())[:10])}}).json()["valid"]


def test_bad_json_and_bad_shapes_get_json_errors(server: ServerProcess) -> None:
    headers = {"Content-Type": "application/json"}
    assert_error(server.request("POST", "/v1/runs", data=b'{"template": ', headers=headers), 400, "bad_json")
    assert_error(server.request("POST", "/v1/runs", data=b"\xff\xfe", headers=headers), 400, "bad_json")
    assert_error(server.request("POST", "/v1/runs", data=b"[1, 2]", headers=headers), 422, "invalid_request")
    nan = server.request("POST", "/v1/runs", data=b'{"template": "title-cards", "params": {"seconds": NaN}}', headers=headers)
    assert "NaN" in assert_error(nan, 422, "invalid_request")["errors"][0]["message"]
    deep = b'{"recipe": {"nodes": {}, "meta": ' + b'{"a": ' * 100 + b"1" + b"}" * 100 + b"}}"
    assert "nested" in assert_error(server.request("POST", "/v1/runs", data=deep, headers=headers), 422, "invalid_request")["errors"][0]["message"]
    very_deep = b'{"recipe": ' + b"[" * 15000 + b"]" * 15000 + b"}"
    assert server.request("POST", "/v1/runs", data=very_deep, headers=headers).status_code in (400, 413, 422)
    unknown = assert_error(server.post("/v1/runs", {"template": "title-cards", "colour": "red"}), 422, "invalid_request")
    assert unknown["errors"][0]["path"] == "body.colour"
    assert_error(server.get("/v1/nothing-here"), 404, "not_found")
    assert_error(server.request("DELETE", "/v1/runs"), 405, "method_not_allowed")
    assert_error(server.get("/v1/runs/does-not-exist"), 404, "not_found")
    assert_error(server.get("/v1/runs", params={"limit": 0}), 422, "invalid_request")


def test_artifact_ids_are_validated_and_never_reach_outside_the_store(server: ServerProcess) -> None:
    for bad in ["..%2F..%2F..%2Fetc%2Fpasswd", "sha256:..%2F..%2Fetc%2Fpasswd", "sha256:" + "A" * 64,
                "sha256:" + "0" * 63, "md5:" + "0" * 32, "%2Fetc%2Fpasswd", "sha256%3A" + "0" * 64 + "%2F..%2F.."]:
        response = server.get(f"/v1/artifacts/{bad}")
        assert response.status_code in (400, 404), (bad, response.status_code)
        assert "root:" not in response.text and response.json()["error"]["code"] in ("bad_request", "not_found")
    # raw paths, as a hostile client sends them (no client-side normalisation)
    with socket.create_connection((server.url.split("//")[1].split(":")[0], int(server.url.rsplit(":", 1)[1])), timeout=10) as raw:
        raw.sendall(b"GET /v1/artifacts/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-alpha\r\n"
                    b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 404") and b"root:" not in answer
    assert_error(server.get("/v1/artifacts/sha256:" + "0" * 64), 404, "not_found")


def test_file_literals_must_stay_inside_the_input_folder(server: ServerProcess) -> None:
    for path in ["/etc/hostname", "../../../etc/hostname", "../server.sqlite"]:
        recipe = {"nodes": {"clip": {"type": "video.still", "inputs": {"image": path}}}}
        error = assert_error(server.post("/v1/runs", {"recipe": recipe}), 422, "invalid_recipe")
        [problem] = error["errors"]
        assert problem["node"] == "clip" and problem["path"] == "nodes.clip.inputs.image"
        assert "outside the server's input folder" in problem["message"]


def test_webhook_targets_are_checked(server: ServerProcess) -> None:
    recipe = slow_recipe("hooks", ["a"], 0.01, prefix="hk_")
    for url in ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.0.0.1/hook", "http://[::1]/hook",
                "http://169.254.169.254/latest", "file:///etc/passwd", "ftp://example.invalid/x", "http://user:pw@127.0.0.1/"]:
        error = assert_error(server.post("/v1/runs", {"recipe": recipe, "webhook_url": url}), 422, "invalid_request")
        assert error["errors"][0]["kind"] == "bad_webhook", url


def test_template_params_are_validated(server: ServerProcess) -> None:
    error = assert_error(server.post("/v1/runs", {"template": "title-cards", "params": {"width": 99999, "fps": "ten"}}),
                         422, "invalid_recipe")
    messages = {e["path"]: e["message"] for e in error["errors"]}
    assert "at most 4096" in messages["params.width"] and "expected integer" in messages["params.fps"]


def test_rate_limit_per_token_answers_429_with_retry_after(plugin_path: Path, tmp_path: Path) -> None:
    env = {"REELGRAPH_API_TOKENS": TOKENS, "REELGRAPH_API_RATE": "0.5", "REELGRAPH_API_BURST": "3"}
    server = start_server(tmp_path, plugin_path, env, token="token-alpha")
    try:
        codes = [server.get("/v1/templates").status_code for _ in range(3)]
        limited = server.get("/v1/templates")
        other = requests.get(server.url + "/v1/templates", headers={"Authorization": "Bearer token-beta"}, timeout=10)
    finally:
        stop_quietly(server)
    assert codes == [200, 200, 200]
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 2
    assert other.status_code == 200  # buckets are per token


def test_refuses_to_listen_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k != "REELGRAPH_API_TOKENS"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "reelgraph.cli", "--home", str(tmp_path / "home"), "serve",
                           "--host", "0.0.0.0", "--port", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "REELGRAPH_API_TOKENS" in proc.stderr and "--token-file" in proc.stderr
    assert "serving on" not in proc.stdout and time.monotonic() - started < 30


def test_tokens_from_a_token_file(plugin_path: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("# operators\n  file-token-1  \n\nfile-token-2\n")
    server = start_server(tmp_path, plugin_path, args=("--token-file", str(token_file)), token="file-token-2")
    try:
        allowed = server.get("/v1/templates")
        refused = requests.get(server.url + "/v1/templates", headers={"Authorization": "Bearer # operators"}, timeout=10)
    finally:
        stop_quietly(server)
    assert allowed.status_code == 200
    assert_error(refused, 401, "unauthorized")
    missing = subprocess.run([sys.executable, "-m", "reelgraph.cli", "--home", str(tmp_path / "home2"), "serve",
                              "--token-file", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "cannot read the token file" in missing.stderr
