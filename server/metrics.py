"""Prometheus metrics, in a registry of the app's own (several apps may live in one process).

* ``reelgraph_runs{status}`` — runs in the server store by status (read at scrape time);
* ``reelgraph_queue_depth`` / ``reelgraph_runs_executing`` — waiting and running jobs;
* ``reelgraph_node_duration_seconds{type,status}`` — executed and failed node executions;
* ``reelgraph_node_executions_total{status}`` and ``reelgraph_cache_hit_ratio`` (cached over
  cached + executed, since the server started);
* ``reelgraph_cost_usd_total{type}`` — what executions cost (providers' reported usage, else the
  estimate) and ``reelgraph_cost_saved_usd_total{type}`` — what cached executions would have cost;
* ``reelgraph_retries_total{kind}`` — webhook retries and resumed runs;
* ``reelgraph_webhook_deliveries_total{outcome}``, ``reelgraph_submissions_total{outcome}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class _RunsByStatus(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("reelgraph_runs", "Runs in the server store by status", labels=["status"])
        counts = self._counts()
        for status in ("queued", "running", "succeeded", "failed", "cancelled"):
            family.add_metric([status], counts.get(status, 0))
        yield family


class Metrics:
    def __init__(self, run_counts: Callable[[], dict[str, int]], depth: Callable[[], int], executing: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_RunsByStatus(run_counts))
        Gauge("reelgraph_queue_depth", "Runs waiting for a worker", registry=self.registry).set_function(depth)
        Gauge("reelgraph_runs_executing", "Runs a worker is executing", registry=self.registry).set_function(executing)
        self.node_seconds = Histogram(
            "reelgraph_node_duration_seconds", "Duration of node executions", ["type", "status"],
            buckets=_BUCKETS, registry=self.registry,
        )
        self.node_executions = Counter(
            "reelgraph_node_executions", "Node executions by outcome", ["status"], registry=self.registry
        )
        Gauge("reelgraph_cache_hit_ratio", "Cached / (cached + executed) node executions since start",
              registry=self.registry).set_function(self.cache_hit_ratio)
        self.retries = Counter("reelgraph_retries", "Retries: webhook deliveries and resumed runs", ["kind"],
                               registry=self.registry)
        self.webhooks = Counter("reelgraph_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"],
                                registry=self.registry)
        self.submissions = Counter("reelgraph_submissions", "Run submissions by outcome", ["outcome"],
                                   registry=self.registry)
        self.cost = Counter("reelgraph_cost_usd", "USD spent by node executions", ["type"], registry=self.registry)
        self.cost_saved = Counter("reelgraph_cost_saved_usd", "USD the cache saved (what reused results cost)",
                                  ["type"], registry=self.registry)
        self._hits = {"cached": 0, "executed": 0}

    def cache_hit_ratio(self) -> float:
        total = self._hits["cached"] + self._hits["executed"]
        return self._hits["cached"] / total if total else 0.0

    def on_event(self, event: dict[str, Any]) -> None:
        status = event.get("status")
        if not event["event"].startswith("node_") or event["event"] in ("node_started", "node_progress") or not status:
            return
        self.node_executions.labels(status).inc()
        if status in self._hits:
            self._hits[status] += 1
        node_type = str(event.get("type", ""))
        if status in ("executed", "failed"):
            self.node_seconds.labels(node_type, status).observe(float(event.get("seconds") or 0.0))
        for counter, field in ((self.cost, "cost"), (self.cost_saved, "saved")):
            amount = event.get(field)
            if isinstance(amount, (int, float)) and amount > 0:
                counter.labels(node_type).inc(float(amount))

    def on_webhook(self, outcome: str, attempt: int) -> None:
        self.webhooks.labels(outcome).inc()
        if outcome == "retry":
            self.retries.labels("webhook").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
