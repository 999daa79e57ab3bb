"""Per-model resource use, measured inside the server process, for ``/metrics`` and bench.

Each served model version gets a ``ModelUsage``: the resident memory of the process right after
it loaded (and how much loading it added), CUDA memory it allocated where a GPU is used, and,
per batch, the wall time the model was busy, the CPU time of the thread that ran it and the rows
it predicted. Busy and CPU time are measured around the model call itself, so each model is
charged only its own batches even when several share the process; the process totals (CPU
seconds from ``os.times``, resident memory now) come alongside. Nothing here is on the request
path except two clock reads per *batch*.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily

SLOTS = 64  # replicas one supervisor can run
SLOT = struct.Struct("<qqqqq")  # pid, in flight, served, ready, in-flight x microseconds
STATUS_ENV = "LEPTON_REPLICA_STATUS"  # the status file a supervisor's replicas share

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident memory of this process now (``/proc/self/statm``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:  # not Linux: the peak is the best portable figure
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def process_cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    t = os.times()
    return t.user + t.system


def cuda_allocated() -> int | None:
    """Bytes torch has allocated on the current CUDA device; None without torch or a GPU.
    Never imports torch itself (the server imports it only for torch models)."""
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        return int(torch.cuda.memory_allocated())
    except Exception:  # noqa: BLE001 - a broken driver must not break /metrics
        return None


@dataclass
class ModelUsage:
    """What one model version used; updated by its batches (one thread at a time)."""

    loaded_at: float = field(default_factory=time.monotonic)
    rss_at_load: int = 0
    rss_load_delta: int = 0
    cuda_at_load: int | None = None  # bytes this model's load added on the GPU
    busy_s: float = 0.0
    cpu_s: float = 0.0
    rows: int = 0
    batches: int = 0

    def timed(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``fn`` (the model call, on the batch thread) charging its CPU time to this model."""
        def run(items: Any) -> Any:
            cpu0 = time.thread_time()
            try:
                return fn(items)
            finally:
                self.cpu_s += time.thread_time() - cpu0
        return run

    def observer(self, observe: Callable[[int, float], None]) -> Callable[[int, float], None]:
        """The batcher's ``on_batch`` that also counts busy seconds and rows here."""
        def on_batch(rows: int, seconds: float) -> None:
            self.busy_s += seconds
            self.rows += rows
            self.batches += 1
            observe(rows, seconds)
        return on_batch


class LoadMeter:
    """Memory before and after loading one model: ``with LoadMeter() as m: load()``."""

    def __enter__(self) -> LoadMeter:
        self.rss0, self.cuda0 = rss_bytes(), cuda_allocated()
        return self

    def __exit__(self, *exc: object) -> None:
        self.rss1, self.cuda1 = rss_bytes(), cuda_allocated()

    def fill(self, usage: ModelUsage) -> ModelUsage:
        usage.rss_at_load, usage.rss_load_delta = self.rss1, max(0, self.rss1 - self.rss0)
        if self.cuda1 is not None:
            usage.cuda_at_load = max(0, self.cuda1 - (self.cuda0 or 0))
        usage.loaded_at = time.monotonic()
        return usage


@dataclass(frozen=True)
class Slot:
    pid: int
    inflight: int
    served: int
    ready: bool
    inflight_us: int = 0  # in flight integrated over time: its change over a period / the
    # period is the mean in flight then (what the autoscaler samples, not a snapshot)


class StatusBoard:
    """The status file a supervisor's replicas share (``lepton.serve.supervisor``): one
    fixed-size slot per replica, written by that replica only."""

    def __init__(self, path: str | Path, create: bool = False) -> None:
        self.path = str(path)
        if create:
            Path(self.path).write_bytes(bytes(SLOT.size * SLOTS))
        self._file = open(self.path, "r+b")  # noqa: SIM115 - lives as long as the board
        self._map = mmap.mmap(self._file.fileno(), SLOT.size * SLOTS)

    def write(self, slot: int, pid: int, inflight: int, served: int, ready: bool,
              inflight_us: int = 0) -> None:
        self._map[slot * SLOT.size:(slot + 1) * SLOT.size] = SLOT.pack(
            pid, inflight, served, int(ready), inflight_us)

    def read(self) -> list[Slot]:
        raw = bytes(self._map)
        return [Slot(pid, inflight, served, bool(ready), inflight_us)
                for pid, inflight, served, ready, inflight_us
                in (SLOT.unpack_from(raw, i * SLOT.size) for i in range(SLOTS))]

    def clear(self, slot: int) -> None:
        self.write(slot, 0, 0, 0, False)

    def close(self) -> None:
        self._map.close()
        self._file.close()


def read_status(path: str) -> list[Slot]:
    """The slots of the status file at ``path`` in use, in slot order (for ``/metrics``)."""
    board = StatusBoard(path)
    try:
        return [s for s in board.read() if s.pid]
    finally:
        board.close()


def replica_slots() -> list[Slot]:
    """The supervisor's live replica slots (pid, in flight, served, ready); [] without one."""
    path = os.environ.get(STATUS_ENV)
    if not path:
        return []
    try:
        return read_status(path)
    except (OSError, ValueError):
        return []


def _replica_families(slots: list[Any]) -> Iterator[GaugeMetricFamily]:
    ready = sum(1 for s in slots if s.ready)
    yield GaugeMetricFamily("lepton_replicas", "Ready replicas serving behind this port",
                            value=ready if slots else 1)
    if not slots:
        return
    inflight = GaugeMetricFamily("lepton_replica_inflight", "Requests in flight per replica",
                                 labels=["replica", "pid"])
    served = GaugeMetricFamily("lepton_replica_requests", "Requests answered per replica "
                               "since it started", labels=["replica", "pid"])
    for i, s in enumerate(slots):
        inflight.add_metric([str(i), str(s.pid)], s.inflight)
        served.add_metric([str(i), str(s.pid)], s.served)
    yield inflight
    yield served


class ResourceCollector:
    """``/metrics`` gauges of per-model resources, queue wait, replicas and cost, read at
    scrape time from the app's model table."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def usages(self) -> Iterator[tuple[str, str, ModelUsage, list[Any]]]:
        """(model, version, usage, its batchers) for every loaded model version."""
        for name, versions in list(self.app.table.models.items()):
            for served in versions.values():
                usage = getattr(served, "usage", None)
                if usage is not None:
                    batchers = [b for b in (served.batcher, served.records) if b is not None]
                    yield name, served.labels[1], usage, batchers

    def collect(self):
        from lepton.serve.cost import cost_rows

        labels = ["model", "version"]
        g = {key: GaugeMetricFamily(f"lepton_model_{key}", text, labels=labels) for key, text in (
            ("cpu_seconds", "CPU seconds of the thread running this model's batches"),
            ("busy_seconds", "Wall seconds this model spent running batches"),
            ("predictions", "Rows this model predicted"),
            ("memory_at_load_bytes", "Process resident memory right after this model loaded"),
            ("memory_load_bytes", "Resident memory that loading this model added"),
            ("queue_wait_seconds", "Mean time a request waited in the queue for its batch"),
            ("cuda_memory_at_load_bytes", "CUDA memory this model's load allocated"))}
        cost = GaugeMetricFamily("lepton_cost_per_1k_predictions",
                                 "Cost of 1,000 predictions (currency of the price sheet): "
                                 "allocation = replica wall time x price, usage = busy time x "
                                 "price, over predictions", labels=[*labels, "basis"])
        rows = list(self.usages())
        for name, version, usage, batchers in rows:
            key = [name, version]
            g["cpu_seconds"].add_metric(key, usage.cpu_s)
            g["busy_seconds"].add_metric(key, usage.busy_s)
            g["predictions"].add_metric(key, usage.rows)
            g["memory_at_load_bytes"].add_metric(key, usage.rss_at_load)
            g["memory_load_bytes"].add_metric(key, usage.rss_load_delta)
            items = sum(b.stats.items for b in batchers)
            waited = sum(getattr(b.stats, "wait_s", 0.0) for b in batchers)
            g["queue_wait_seconds"].add_metric(key, waited / items if items else 0.0)
            if usage.cuda_at_load is not None:
                g["cuda_memory_at_load_bytes"].add_metric(key, usage.cuda_at_load)
        for name, version, basis, value in cost_rows(
                self.app.options.threads, rss_bytes(), [(n, v, u) for n, v, u, _ in rows]):
            cost.add_metric([name, version, basis], value)
        yield from g.values()
        yield cost
        yield GaugeMetricFamily("lepton_resident_memory_bytes",
                                "Resident memory of this server process now", value=rss_bytes())
        yield GaugeMetricFamily("lepton_process_cpu_seconds",
                                "CPU seconds of this server process (user + system)",
                                value=process_cpu_seconds())
        yield from _replica_families(replica_slots())
        cuda = cuda_allocated()
        if cuda is not None:
            yield GaugeMetricFamily("lepton_cuda_memory_allocated_bytes",
                                    "CUDA memory torch has allocated in this process now",
                                    value=cuda)
