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


class MonitorGauges:
    """``lepton_drift_score{model,version,feature,method}`` and ``lepton_feedback_accuracy``
    from the newest report ``lepton monitor`` stored for each served model. ``refresh`` (a
    background thread, every 30 s) reads the store; a scrape only reads that copy, and no
    request computes anything. A model never monitored has no series."""

    def __init__(self) -> None:
        self._latest: dict[str, dict[str, Any]] = {}

    def refresh(self, store: Any, models: Iterable[str]) -> None:
        from lepton.store._monitor import latest_scores

        latest = {}
        for name in models:
            found = latest_scores(store, name)
            if found is not None:
                latest[name] = found
        self._latest = latest  # one assignment: a scrape sees the old copy or the new

    def collect(self):
        drift = GaugeMetricFamily("lepton_drift_score",
                                  "Drift score of a feature in the newest monitor report "
                                  "(p-value statistic or distance, by method)",
                                  labels=["model", "version", "feature", "method"])
        accuracy = GaugeMetricFamily("lepton_feedback_accuracy",
                                     "Accuracy on feedback labels in the newest monitor report",
                                     labels=["model", "version"])
        for name, found in self._latest.items():
            version = "" if found["version"] is None else str(found["version"])
            for feature, method, score in found["scores"]:
                drift.add_metric([name, version, feature, method], score)
            if found["accuracy"] is not None:
                accuracy.add_metric([name, version], found["accuracy"])
        yield drift
        yield accuracy


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
        self.shadow_rows = Counter("lepton_shadow_rows",
                                   "Rows mirrored to a shadow (or a canary's champion) by "
                                   "outcome: agree, disagree, error", ["model", "version",
                                                                       "outcome"],
                                   registry=self.registry)
        self.shadow_score_diff = Counter("lepton_shadow_score_diff",
                                         "Summed largest score change between the answer and "
                                         "the mirrored version's (over rows: the mean)",
                                         ["model", "version"], registry=self.registry)
        self.shadow_latency = Histogram("lepton_shadow_latency_seconds",
                                        "From the answer to the mirrored version's answer",
                                        ["model", "version"], buckets=LATENCY_BUCKETS,
                                        registry=self.registry)
        self._live = _QueueCollector(batchers)
        self.monitor = MonitorGauges()
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry.register(self.monitor)  # read from the store: alike in every worker
        if not self.multiprocess:
            self.registry.register(self._live)
            ProcessCollector(registry=self.registry)
        self._children: dict[tuple, Any] = {}
        self._process: list[Any] = []  # per-process collectors (resources, cost): add_live

    def add_live(self, collector: Any) -> None:
        """A collector read at scrape time that describes this process (in every mode)."""
        self._process.append(collector)
        if not self.multiprocess:
            self.registry.register(collector)

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

    def shadow_observer(self, model: str, version: str
                        ) -> Callable[[int, int, float, float, int], None]:
        """The observer a ``shadow.Mirror`` of ``model``/``version`` reports to."""
        agree, disagree = (self.shadow_rows.labels(model, version, o) for o in
                           ("agree", "disagree"))
        errors = self.shadow_rows.labels(model, version, "error")
        diff = self.shadow_score_diff.labels(model, version)
        latency = self.shadow_latency.labels(model, version)

        def observe(agreed: int, rows: int, score_diff: float, seconds: float,
                    failed: int) -> None:
            if failed:
                errors.inc(failed)
                return
            agree.inc(agreed)
            disagree.inc(rows - agreed)
            diff.inc(score_diff)
            latency.observe(seconds)

        return observe

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        scrape.register(self._live)
        scrape.register(self.monitor)
        for collector in self._process:
            scrape.register(collector)
        ProcessCollector(registry=scrape)
        return generate_latest(scrape)
