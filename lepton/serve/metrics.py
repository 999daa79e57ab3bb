"""Prometheus metrics for the server: requests, latency, batch sizes, queue depth, process.

Each app gets its own ``CollectorRegistry`` (several apps can live in one test process). Label
children are cached so that the hot path does a dict lookup and an ``inc``/``observe``; queue
depth and in-flight counts are read from the batchers at scrape time, costing nothing per
request. With ``--workers N`` the server sets ``PROMETHEUS_MULTIPROC_DIR``: counters and
histograms are then summed over all workers at scrape time, while queue depth and process
metrics describe the worker that answered the scrape.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class _QueueCollector:
    """Reads live queue depth and in-flight requests from the batchers at scrape time."""

    def __init__(self, source: Callable[[], Iterable[tuple[str, str, Any]]]) -> None:
        self.source = source

    def collect(self):
        depth = GaugeMetricFamily("lepton_queue_depth", "Requests waiting for a batch",
                                  labels=["model", "version"])
        inflight = GaugeMetricFamily("lepton_inflight_requests",
                                     "Requests queued or running", labels=["model", "version"])
        totals: dict[tuple[str, str], list[int]] = {}
        for name, version, batcher in self.source():  # a model may have two batchers (v2, v1)
            total = totals.setdefault((name, version), [0, 0])
            total[0] += batcher.queue_depth
            total[1] += batcher.inflight
        for labels, (queued, running) in totals.items():
            depth.add_metric(list(labels), queued)
            inflight.add_metric(list(labels), running)
        yield depth
        yield inflight


class ServeMetrics:
    """The server's metrics, registered in a private registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, batchers: Callable[[], Iterable[tuple[str, str, Any]]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lepton_requests",
                                "HTTP requests by model, version, route and status",
                                ["model", "version", "route", "code"], registry=self.registry)
        self.latency = Histogram("lepton_request_latency_seconds",
                                 "Time from request body read to response",
                                 ["model", "version", "route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.batch_size = Histogram("lepton_batch_size", "Rows per model batch",
                                    ["model", "version"], buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.batch_latency = Histogram("lepton_batch_latency_seconds",
                                       "Model execution time per batch", ["model", "version"],
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predlog_dropped = Counter("lepton_predlog_dropped",
                                       "Prediction-log rows dropped because the log was full",
                                       registry=self.registry)
        self._live = _QueueCollector(batchers)
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        if not self.multiprocess:
            self.registry.register(self._live)
            ProcessCollector(registry=self.registry)
        self._children: dict[tuple, Any] = {}

    def observe_request(self, model: str, version: str, route: str, code: int,
                        seconds: float | None) -> None:
        key = (model, version, route, code)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(model, version, route, str(code))
        child.inc()
        if seconds is not None:
            route_key = (model, version, route)
            hist = self._children.get(route_key)
            if hist is None:
                hist = self._children[route_key] = self.latency.labels(model, version, route)
            hist.observe(seconds)

    def batch_observer(self, model: str, version: str) -> Callable[[int, float], None]:
        sizes = self.batch_size.labels(model, version)
        times = self.batch_latency.labels(model, version)

        def observe(rows: int, seconds: float) -> None:
            sizes.observe(rows)
            times.observe(seconds)

        return observe

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        scrape.register(self._live)
        ProcessCollector(registry=scrape)
        return generate_latest(scrape)
