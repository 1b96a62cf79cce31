"""Engine API under load: submission latency and event delivery lag, from a second process on loopback.

    .venv/bin/python -m reelgraph.tests.bench.server_load              # 50 req/s for 60 s
    .venv/bin/python -m reelgraph.tests.bench.server_load --quick                # 50 req/s for 10 s
    .venv/bin/python -m reelgraph.tests.bench.server_load --rate 100 --seconds 30 --json server.json

A real ``reelgraph serve`` subprocess (fresh home, bearer token, rate limit out of the way) gets
an open-loop stream of ``POST /v1/runs``: requests leave on a fixed schedule whatever the
previous answers took, from a pool of keep-alive connections. Each submission is the same small
recipe (5 executions of built-in text nodes, all cached after a warm-up run) with its own
metadata, so every one is a distinct run that the server executes. Reported:

* submission latency p50/p90/p99/max (202 received - request sent), next to a baseline of
  ``GET /healthz`` at the same rate in the same run (the HTTP floor of this server and client);
* lateness of the client itself (sent - scheduled), so a saturated client is visible;
* event delivery lag: once a second a probe run (20 uncached executions of the same text nodes,
  so its events keep coming after a subscriber connects) is followed over a WebSocket, recording
  (received - the event's ``time`` stamp, set when the server stored it) for each event stored
  after the connection was up; the same probes on the idle server after the load are the baseline;
* runs finished per second and the time to drain what was queued.

Timings are reported, never asserted. Exit status 1 only when something functional fails
(a submission not answered 202, a run that does not succeed).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import websocket

from reelgraph.tests.bench.run_benchmarks import Row, Settings, environment, percentile, render

TOKEN = "bench-token"
PROBE_ITEMS = 20  # uncached executions per probe run, so its events keep coming after a subscriber connects
RECIPE = {
    "name": "bench-small",
    "nodes": {
        "split": {"type": "text.split", "inputs": {"text": "alpha,beta,gamma", "separator": ","}},
        "shout": {"type": "text.template", "inputs": {"template": "{text}!", "text": {"link": ["split", "items"]}}},
        "join": {"type": "text.join", "inputs": {"items": {"link": ["shout", "text"]}, "separator": " "}},
    },
    "outputs": {"text": {"link": ["join", "text"]}},
}


@dataclass
class Sample:
    index: int
    due: float
    sent: float
    answered: float
    status: int
    run_id: str | None = None


@dataclass
class Lags:
    samples: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, values: list[float]) -> None:
        with self.lock:
            self.samples.extend(values)


class Server:
    def __init__(self, home: Path, workers: int) -> None:
        env = {**os.environ, "REELGRAPH_API_TOKENS": TOKEN, "REELGRAPH_API_RATE": "1000000", "REELGRAPH_API_BURST": "1000000"}
        self.output = home.parent / "server.out"
        with open(self.output, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "reelgraph.cli", "--home", str(home), "serve", "--port", "0", "--workers", str(workers)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        self.url = ""
        while not self.url and time.monotonic() < deadline:
            found = re.search(r"serving on (http://\S+)", self.output.read_text())
            if found:
                self.url = found.group(1)
            elif self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output.read_text()}")
            time.sleep(0.05)
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server never became ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def probe_recipe(tag: str) -> dict[str, Any]:
    items = ",".join(f"{tag}-{i}" for i in range(PROBE_ITEMS))
    return {**RECIPE, "name": "bench-probe", "nodes": {**RECIPE["nodes"], "split": {"type": "text.split", "inputs": {"text": items, "separator": ","}}}}


def probe(server: Server, session: requests.Session, tag: str, lags: Lags, finished: list[str]) -> None:
    run_id = session.post(server.url + "/v1/runs", json={"recipe": probe_recipe(tag)}, headers=HEADERS, timeout=30).json()["id"]
    follow(server, run_id, lags, finished)


def open_loop(rate: float, seconds: float, senders: int,
              send: Callable[[requests.Session, int], requests.Response],
              on_answer: Callable[[Sample, requests.Response], None] = lambda s, r: None) -> list[Sample]:
    """Send ``rate * seconds`` requests on a fixed schedule from ``senders`` keep-alive connections."""
    total = int(rate * seconds)
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
    samples: list[Sample] = []
    lock = threading.Lock()

    def worker() -> None:
        session = requests.Session()
        while (job := jobs.get()) is not None:
            index, due = job
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            response = send(session, index)
            sample = Sample(index, due, sent, time.perf_counter(), response.status_code)
            on_answer(sample, response)
            with lock:
                samples.append(sample)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(senders)]
    for thread in threads:
        thread.start()
    start = time.perf_counter() + 0.2
    for index in range(total):
        jobs.put((index, start + index / rate))
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join()
    return sorted(samples, key=lambda s: s.index)


def follow(server: Server, run_id: str, lags: Lags, finished: list[str]) -> None:
    """Subscribe to a run over WebSocket; keep the lag of events stored once the connection was up."""
    connection = websocket.create_connection(
        server.url.replace("http://", "ws://") + f"/v1/runs/{run_id}/events", header=[f"Authorization: Bearer {TOKEN}"], timeout=60)
    subscribed = time.time()
    values = []
    try:
        while True:
            opcode, data = connection.recv_data(control_frame=True)
            if opcode != websocket.ABNF.OPCODE_TEXT:
                break
            received = time.time()
            event = json.loads(data)
            if event["time"] >= subscribed:
                values.append(received - event["time"])
            if event["event"] == "run_finished":
                finished.append(event["status"])
    finally:
        connection.close()
    lags.add(values)


def latency_rows(bench: str, samples: list[Sample], baseline: list[Sample], target_p99: float) -> list[Row]:
    took = [s.answered - s.sent for s in samples]
    floor = [s.answered - s.sent for s in baseline]
    rows = []
    for label, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
        rows.append(Row(bench, f"submit latency {label}", percentile(took, fraction), "s",
                        target=target_p99 if label == "p99" else (0.5 if label == "max" else None),
                        baseline_label=f"GET /healthz {label}", baseline=percentile(floor, fraction)))
    late = [max(0.0, s.sent - s.due) for s in samples]
    rows.append(Row(bench, "client lateness p99", percentile(late, 0.99), "s",
                    note="how late the load generator itself sent (sent - scheduled); large values mean a saturated client"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="submissions per second (default 50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load (default 60)")
    parser.add_argument("--quick", action="store_true", help="10 s of load")
    parser.add_argument("--senders", type=int, default=16, help="client connections (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="server job workers (default 2)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    seconds = 10.0 if args.quick else args.seconds
    started = time.perf_counter()
    failures: list[str] = []
    rows: list[Row] = []
    bench = f"server {args.rate:g} req/s"
    with tempfile.TemporaryDirectory(prefix="reelgraph-server-bench-") as scratch:
        server = Server(Path(scratch) / "home", args.workers)
        try:
            warm = requests.post(server.url + "/v1/runs", json={"recipe": RECIPE}, headers=HEADERS, timeout=30).json()["id"]
            while requests.get(f"{server.url}/v1/runs/{warm}", headers=HEADERS, timeout=30).json()["status"] != "succeeded":
                time.sleep(0.05)

            print(f"baseline: GET /healthz at {args.rate:g} req/s for {min(seconds, 10):g} s ...", file=sys.stderr, flush=True)
            baseline = open_loop(args.rate, min(seconds, 10.0), args.senders,
                                 lambda session, i: session.get(server.url + "/healthz", timeout=30))

            print(f"load: POST /v1/runs at {args.rate:g} req/s for {seconds:g} s ...", file=sys.stderr, flush=True)
            lags, finished = Lags(), []
            load_over = threading.Event()

            def submit(session: requests.Session, index: int) -> requests.Response:
                return session.post(server.url + "/v1/runs", json={"recipe": RECIPE, "metadata": {"i": index}},
                                    headers=HEADERS, timeout=30)

            def probes() -> None:
                session = requests.Session()
                index = 0
                while not load_over.wait(1.0):
                    probe(server, session, f"load{index}", lags, finished)
                    index += 1

            prober = threading.Thread(target=probes, daemon=True)
            prober.start()
            samples = open_loop(args.rate, seconds, args.senders, submit)
            load_over.set()
            prober.join(60)
            bad = [s for s in samples if s.status != 202]
            if bad:
                failures.append(f"{len(bad)} submissions not answered 202 (e.g. {bad[0].status})")
            rows += latency_rows(bench, samples, baseline, target_p99=0.05)

            drain_started = time.perf_counter()
            deadline = time.monotonic() + 300
            counts: dict[str, int] = {}
            while time.monotonic() < deadline:
                text = requests.get(server.url + "/metrics", headers=HEADERS, timeout=30).text
                counts = {m.group(1): int(float(m.group(2))) for m in re.finditer(r'^reelgraph_runs\{status="(\w+)"\} (\S+)$', text, re.M)}
                if counts.get("queued", 0) + counts.get("running", 0) == 0:
                    break
                time.sleep(0.1)
            drained = time.perf_counter() - drain_started
            runs_done = counts.get("succeeded", 0)
            if counts.get("failed", 0) or runs_done < len(samples):
                failures.append(f"runs by status after the load: {counts}")
            window = samples[-1].answered - samples[0].sent + drained
            rows.append(Row(bench, "runs finished per second", len(samples) / window, "",
                            note=f"{len(samples)} submitted runs (5 cached executions each) finished within {window:.1f} s"
                                 f" of the first submission; the queue drained {drained:.2f} s after the last"))
            loaded_lag = lags.samples

            print("idle event lag ...", file=sys.stderr, flush=True)
            idle, idle_finished = Lags(), []
            session = requests.Session()
            for index in range(10):
                probe(server, session, f"idle{index}", idle, idle_finished)
            if any(status != "succeeded" for status in finished + idle_finished):
                failures.append(f"probe runs: {finished + idle_finished}")
            for label, fraction in (("p50", 0.5), ("p99", 0.99)):
                rows.append(Row(bench, f"event lag under load {label}",
                                percentile(loaded_lag, fraction) if loaded_lag else None, "s",
                                baseline_label=f"idle lag {label}",
                                baseline=percentile(idle.samples, fraction) if idle.samples else None,
                                note=f"{len(loaded_lag)} live events of {len(finished)} probe runs under load,"
                                     f" {len(idle.samples)} of {len(idle_finished)} idle" if label == "p50" else ""))
        finally:
            server.stop()
    elapsed = time.perf_counter() - started
    settings = Settings(mode=f"{seconds:g} s load", workers=args.workers)
    info = environment()
    print(render(rows, settings, info, elapsed))
    for failure in failures:
        print(f"FUNCTIONAL FAILURE: {failure}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {"rate": args.rate, "seconds": seconds, "senders": args.senders, "workers": args.workers,
                    "environment": info, "failures": failures, "results": [row.to_json() for row in rows]}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
