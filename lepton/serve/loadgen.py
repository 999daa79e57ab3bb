"""A bounded, closed-loop async load generator (aiohttp) for ``lepton bench`` and benchmarks.

``concurrency`` clients each send one request, wait for the answer, and send the next, for
``duration_s`` seconds after a short warm-up; so at most ``concurrency`` requests are ever in
flight and the server, not the generator, sets the pace. aiohttp costs far less CPU per request
than httpx, which matters when generator and server share a small machine.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from lepton.serve.protocol import DATATYPES


@dataclass
class LoadResult:
    """What one load run measured."""

    concurrency: int
    duration_s: float
    latencies_ms: np.ndarray
    errors: collections.Counter = field(default_factory=collections.Counter)

    @property
    def ok(self) -> int:
        return int(self.latencies_ms.size)

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.ok else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "requests": self.ok, "rps": round(self.rps, 1),
                "p50_ms": round(self.percentile(50), 2), "p95_ms": round(self.percentile(95), 2),
                "p99_ms": round(self.percentile(99), 2), "errors": dict(self.errors)}


def infer_request(metadata: dict[str, Any], *, rows: int = 1, binary: bool = False,
                  seed: int = 0) -> tuple[bytes, dict[str, str]]:
    """A valid V2 infer body (JSON or binary tensors) for a model's metadata, random data."""
    rng = np.random.default_rng(seed)
    header: dict[str, Any] = {"inputs": []}
    blobs = []
    for spec in metadata["inputs"]:
        shape = [rows] + [8 if d < 0 else d for d in spec["shape"][1:]]
        dtype = DATATYPES[spec["datatype"]]
        array = (rng.random(shape) if dtype.kind == "f" else np.zeros(shape)).astype(dtype)
        entry: dict[str, Any] = {"name": spec["name"], "shape": shape,
                                 "datatype": spec["datatype"]}
        if binary:
            blob = array.astype(dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.reshape(-1).tolist()
        header["inputs"].append(entry)
    if not binary:
        return orjson.dumps(header), {"Content-Type": "application/json"}
    header["parameters"] = {"binary_data_output": True}
    head = orjson.dumps(header)
    return b"".join([head, *blobs]), {"Content-Type": "application/octet-stream",
                                      "Inference-Header-Content-Length": str(len(head))}


async def run_load(url: str, body: bytes, headers: dict[str, str] | None = None, *,
                   concurrency: int = 16, duration_s: float = 10.0,
                   warmup_s: float = 1.0) -> LoadResult:
    """POST ``body`` to ``url`` from ``concurrency`` closed-loop clients."""
    import aiohttp

    latencies: list[float] = []
    errors: collections.Counter = collections.Counter()
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)

    async def client(session: aiohttp.ClientSession) -> None:
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                status = type(exc).__name__
            done = time.perf_counter()
            if sent < measure_from or done > stop_at:
                continue
            if status == 200:
                latencies.append((done - sent) * 1000.0)
            else:
                errors[str(status)] += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return LoadResult(concurrency, duration_s, np.asarray(latencies), errors)


def batch_histogram(metrics_text: str) -> dict[str, float]:
    """Cumulative batch-size bucket counts (``le`` -> count) from a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = collections.defaultdict(float)
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "lepton_batch_size":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                counts[sample.labels["le"]] += sample.value
    return dict(counts)


def histogram_delta(before: dict[str, float], after: dict[str, float]) -> list[tuple[str, int]]:
    """Per-bucket (not cumulative) batch counts between two scrapes: [("<=1", n), ...]."""
    rows, previous = [], 0.0
    for le in sorted(after, key=lambda k: float(k)):
        cumulative = after[le] - before.get(le, 0.0)
        count = int(round(cumulative - previous))
        previous = cumulative
        label = "+Inf" if le == "+Inf" else f"<={float(le):g}"
        if count:
            rows.append((label, count))
    return rows
