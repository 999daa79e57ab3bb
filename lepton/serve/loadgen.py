"""A bounded, closed-loop load generator for ``lepton bench`` and the serving benchmark.

``concurrency`` keep-alive connections each send one request, wait for the answer, and send the
next, for ``duration_s`` seconds after a short warm-up; so at most ``concurrency`` requests are
ever in flight and the server, not the generator, sets the pace. Generator and server often
share a small machine, so every microsecond the generator spends is taken from the server it
measures: requests are prebuilt bytes written on raw asyncio connections and the responses are
framed by httptools, in the manner of wrk, rather than going through a full HTTP client.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httptools
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
    connections: int = 0  # opened, including reconnects after the server closed one

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
                   concurrency: int = 16, duration_s: float = 10.0, warmup_s: float = 1.0,
                   timeout_s: float = 60.0) -> LoadResult:
    """POST ``body`` to ``url`` from ``concurrency`` closed-loop keep-alive connections."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ssl = parts.scheme == "https" or None
    request = _request_bytes(parts, body, headers or {})
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: collections.Counter = collections.Counter()
    opened = 0
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s

    async def client() -> None:
        nonlocal opened
        connection: _Connection | None = None
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                break
            try:
                if connection is None:
                    _, connection = await loop.create_connection(_Connection, host, port,
                                                                 ssl=ssl)
                    opened += 1
                status: int | str = await connection.exchange(request, timeout_s)
                if not connection.reusable:
                    connection.close()
                    connection = None
            except (OSError, asyncio.TimeoutError, httptools.HttpParserError) as exc:
                status = type(exc).__name__
                if connection is not None:
                    connection.close()
                    connection = None
                await asyncio.sleep(0.01)  # a refused or broken connection: don't spin
            done = time.perf_counter()
            if sent < measure_from or done > stop_at:
                continue
            if status == 200:
                latencies.append((done - sent) * 1000.0)
            else:
                errors[str(status)] += 1
        if connection is not None:
            connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return LoadResult(concurrency, duration_s, np.asarray(latencies), errors, opened)


def measure(url: str, body: bytes, headers: dict[str, str] | None = None, *,
            concurrency: int = 16, duration_s: float = 10.0,
            warmup_s: float = 1.0) -> LoadResult:
    """:func:`run_load` on its own event loop (uvloop when installed: less CPU per request)."""
    try:
        import uvloop
        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        factory = None
    loop = factory() if factory is not None else asyncio.new_event_loop()  # 3.10: no Runner
    try:
        return loop.run_until_complete(run_load(url, body, headers, concurrency=concurrency,
                                                duration_s=duration_s, warmup_s=warmup_s))
    finally:
        loop.close()


def _request_bytes(parts: SplitResult, body: bytes, headers: dict[str, str]) -> bytes:
    """The whole request, built once: every send is a single write of these bytes."""
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()
              if k.lower() not in ("host", "content-length")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a request, wait for the whole response.

    httptools (the parser uvicorn uses) frames the responses, Content-Length or chunked; the
    body is discarded, so a request costs the generator a write, a parse and a future.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.reusable = False
            self._settle(exc)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        self._settle(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._settle(exc or ConnectionResetError("the server closed the connection"))

    def _settle(self, outcome: int | Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, Exception):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)

    async def exchange(self, request: bytes, timeout_s: float) -> int:
        if not self.reusable or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the server closed the connection")
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout_s, self._settle, asyncio.TimeoutError())
        self.transport.write(request)
        try:
            return await waiter
        finally:
            timer.cancel()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


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
