"""Measuring a variant the way it will be served: size, latency, throughput and the metric.

Each artifact is opened through ``open_runtime`` (the runtime its manifest names, or the one
given) and called with ``Runtime.run`` exactly as the server's batcher calls it, so the
numbers include Lepton's own per-call work. Latency is the median of single-row calls at batch
1; throughput is rows per second at batch 64, the median of several timed passes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Measurement:
    """One variant's numbers (the metric in points: accuracy × 100, or R² × 100)."""

    size_bytes: int
    p50_ms_b1: float
    rows_per_s_b64: float
    metric: float
    metric_name: str
    rows: int = 0  # held-out rows the metric was measured on

    def tie(self) -> float:
        """Points of accuracy within which two variants count as equally accurate: one
        standard error of an accuracy on ``rows`` rows (0.17 points at 97 % on 10,000), so
        that a rounding-level gain cannot keep a slower variant; 0 for R²."""
        if self.metric_name != "accuracy" or self.rows <= 0:
            return 0.0
        p = min(max(self.metric / 100, 0.0), 1.0)
        return 100 * float(np.sqrt(p * (1 - p) / self.rows))

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def metric(outputs: np.ndarray, y: np.ndarray) -> tuple[float, str]:
    """Accuracy in points for class outputs, R² in points for one regression output."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] > 1:
        return float((out.argmax(1) == np.asarray(y).reshape(-1)).mean() * 100), "accuracy"
    flat, target = out.reshape(len(out), -1)[:, 0], np.asarray(y, dtype=np.float64).reshape(-1)
    if set(np.unique(target)) <= {0.0, 1.0}:
        if flat.min() < 0 or flat.max() > 1:
            flat = 1 / (1 + np.exp(-flat))
        return float(((flat >= 0.5) == target).mean() * 100), "accuracy"
    total = float(((target - target.mean()) ** 2).sum()) or 1.0
    return float((1 - ((target - flat) ** 2).sum() / total) * 100), "r2"


def outputs_of(runtime: Any, xs: list[np.ndarray], batch: int = 512) -> np.ndarray:
    names = [s.name for s in runtime.inputs]
    outs = []
    for start in range(0, len(xs[0]), batch):
        item = {n: np.ascontiguousarray(x[start:start + batch]) for n, x in zip(names, xs)}
        result = runtime.run([item])[0]
        if isinstance(result, Exception):
            raise result
        outs.append(next(iter(result.values())))
    return np.concatenate(outs)


def speed(runtime: Any, xs: list[np.ndarray], rows: int, seconds: float = 0.6) -> list[float]:
    """Per-call seconds of ``runtime.run`` at ``rows`` rows, after a warm-up."""
    names = [s.name for s in runtime.inputs]
    take = np.arange(rows) % len(xs[0])
    item = {n: np.ascontiguousarray(x[take]) for n, x in zip(names, xs)}
    for _ in range(3):
        runtime.run([item])
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        runtime.run([item])
        times.append(time.perf_counter() - start)
    return times


def measure_all(paths: list[Path], xs: list[np.ndarray], y: np.ndarray, *,
                threads: int | None = None, rounds: int = 3,
                seconds: float = 0.25) -> list[Measurement]:
    """Measure several artifacts side by side: every runtime is opened first, then the timed
    passes alternate between them for ``rounds`` rounds and each keeps its best round (on a
    shared machine the best round is the one least disturbed by other processes)."""
    from lepton.artifact.runtimes import open_runtime
    from lepton.compress.source import file_size

    runtimes = [open_runtime(Path(p), threads=threads) for p in paths]
    scores = [metric(outputs_of(rt, xs), y) for rt in runtimes]
    b1 = [float("inf")] * len(paths)
    b64 = [float("inf")] * len(paths)
    for _ in range(rounds):
        for i, rt in enumerate(runtimes):
            b1[i] = min(b1[i], float(np.median(speed(rt, xs, 1, seconds))))
            b64[i] = min(b64[i], float(np.median(speed(rt, xs, 64, seconds))))
    return [Measurement(file_size(Path(p)), b1[i] * 1000, 64 / b64[i], *scores[i], len(y))
            for i, p in enumerate(paths)]


def measure(path: str | Path, xs: list[np.ndarray], y: np.ndarray, *,
            threads: int | None = None, rounds: int = 3,
            seconds: float = 0.25) -> Measurement:
    """Size, p50 latency at batch 1, throughput at batch 64 and the metric of one artifact."""
    return measure_all([Path(path)], xs, y, threads=threads, rounds=rounds,
                       seconds=seconds)[0]
