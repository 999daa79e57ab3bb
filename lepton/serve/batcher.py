"""Adaptive batching: requests that arrive together run as one batch.

Greedy by design: when the model is free and nothing else is queued, a request runs at once
(no batching window when idle). While a batch runs, new requests queue up and form the next
batch. ``max_latency_ms`` only applies under load: when the previous batch was larger than what
is queued now, the batcher waits up to that long (from the oldest request's arrival) for the
batch to fill back up. The queue is bounded: when full, ``submit`` raises ``OverloadedError``
(HTTP 503 + Retry-After) at once instead of growing memory. A request that waits past its
timeout gets ``RequestTimeoutError`` (HTTP 504) and, if it has not started, never runs.

The batch function runs on one thread (one per worker process, shared by the models of that
process when an executor is passed), takes a list of
items and returns one result per item, in order; an item's result may be an exception, which
fails only that item's request. If the whole batch raises, each item is retried alone so that
one bad item cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lepton.errors import ConfigError, LeptonError

BatchFn = Callable[[Sequence[Any]], Sequence[Any]]


class OverloadedError(LeptonError, RuntimeError):
    """The request queue is full; the client should retry later."""

    http_status = 503

    def __init__(self, max_queue: int, retry_after_s: float) -> None:
        super().__init__(
            "The server is overloaded: its request queue is full",
            expected=f"at most {max_queue} queued requests",
            received="one more",
            fix=f"retry after {retry_after_s:.0f} s or lower the request rate",
        )
        self.retry_after_s = retry_after_s


class RequestTimeoutError(LeptonError, TimeoutError):
    """A request waited longer than its timeout for its result."""

    http_status = 504

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            "The request timed out before the model answered",
            expected=f"an answer within {timeout_s:g} s",
            fix="retry, send smaller requests, or raise the server's --timeout",
        )


@dataclass(slots=True, eq=False)  # eq=False: hashed by identity, kept in a set
class _Pending:
    item: Any
    size: int
    future: asyncio.Future
    arrived: float
    deadline: float
    timeout: float | None


@dataclass
class BatchStats:
    """Counters the metrics module reads; updated on the event loop only."""

    batches: int = 0
    items: int = 0
    rejected: int = 0
    timed_out: int = 0
    wait_s: float = 0.0  # summed over items: arrival to the start of their batch
    batch_sizes: collections.Counter = field(default_factory=collections.Counter)


class Batcher:
    """Queue items from many coroutines and run them through ``fn`` in batches.

    ``size_of(item)`` says how many rows an item carries (1 by default); a batch holds at most
    ``max_batch_size`` rows, except that an item larger than that runs alone.
    ``on_batch(rows, seconds)`` is called on the event loop after each batch (for metrics).
    """

    def __init__(self, fn: BatchFn, *, max_batch_size: int = 64, max_latency_ms: float = 2.0,
                 max_queue: int = 1024, timeout_s: float | None = 30.0,
                 size_of: Callable[[Any], int] | None = None,
                 on_batch: Callable[[int, float], None] | None = None,
                 executor: Executor | None = None) -> None:
        if max_batch_size < 1:
            raise ConfigError("max_batch_size must be a positive integer",
                              received=f"max_batch_size={max_batch_size!r}")
        if max_latency_ms < 0:
            raise ConfigError("max_latency_ms must be >= 0",
                              received=f"max_latency_ms={max_latency_ms!r}")
        if max_queue < 1:
            raise ConfigError("max_queue must be a positive integer",
                              received=f"max_queue={max_queue!r}")
        if timeout_s is not None and timeout_s <= 0:
            raise ConfigError("timeout_s must be positive or None",
                              received=f"timeout_s={timeout_s!r}")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000.0
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.size_of = size_of
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._queue: collections.deque[_Pending] = collections.deque()
        # both set on the first submit, on the loop the batcher then lives on
        self._wakeup: asyncio.Event = None  # type: ignore[assignment]
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="lepton-batch")
        self._busy = False
        self._last_batch = 1
        self._closed = False
        self._outstanding: set[_Pending] = set()
        self._sweeper: asyncio.Task | None = None
        # timeouts fire up to this late: a twentieth of the timeout, between 1 and 50 ms
        self._sweep_s = min(0.05, max(0.001, (timeout_s or 1.0) / 20))

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def inflight(self) -> int:
        """Requests submitted and not yet answered (queued or running)."""
        return len(self._outstanding)

    async def submit(self, item: Any, timeout_s: float | None = None) -> Any:
        """Queue one item and wait for its result; raise its exception if it failed."""
        if self._closed:
            raise OverloadedError(self.max_queue, 1.0)
        if len(self._queue) >= self.max_queue:
            self.stats.rejected += 1
            raise OverloadedError(self.max_queue, self._retry_after())
        if self._task is None:
            # the batcher lives on one loop; looking it up per request costs a getpid()
            # syscall on Python 3.11 (asyncio's fork check)
            self._loop = asyncio.get_running_loop()
            self._wakeup = asyncio.Event()
            self._task = self._loop.create_task(self._run())
            self._sweeper = self._loop.create_task(self._sweep())
        future = self._loop.create_future()
        size = self.size_of(item) if self.size_of is not None else 1
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        now = time.perf_counter()
        pending = _Pending(item, size, future, now,
                           now + timeout if timeout is not None else math.inf, timeout)
        self._queue.append(pending)
        self._outstanding.add(pending)
        if not self._busy:
            self._wakeup.set()
        try:
            return await future
        finally:
            self._outstanding.discard(pending)

    async def _sweep(self) -> None:
        """Expire requests past their deadline: one sweep every few ms instead of a timer per
        request (timers cost more than the rest of the batcher on the hot path)."""
        while True:
            await asyncio.sleep(self._sweep_s)
            if not self._outstanding:
                continue
            now = time.perf_counter()
            for pending in [p for p in self._outstanding if p.deadline <= now]:
                self._expire(pending)

    def _expire(self, pending: _Pending) -> None:
        """Fail a request that waited too long; if still queued, it never runs."""
        if pending.future.done():
            return
        self.stats.timed_out += 1
        pending.future.set_exception(RequestTimeoutError(pending.timeout or 0.0))
        with contextlib.suppress(ValueError):  # ValueError: already running, result discarded
            self._queue.remove(pending)

    def _retry_after(self) -> float:
        """Seconds until the queue has likely drained, rounded up to HTTP's whole seconds."""
        return 1.0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._fill()
            batch = self._take()
            if not batch:
                continue
            self._busy = True
            started = time.perf_counter()
            self.stats.wait_s += sum(started - p.arrived for p in batch)
            try:
                results = await loop.run_in_executor(self._executor, self._call, batch)
            finally:
                self._busy = False
            rows = sum(p.size for p in batch)
            self._last_batch = rows
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.batch_sizes[rows] += 1
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue  # timed out meanwhile
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
            if self.on_batch is not None:
                self.on_batch(rows, time.perf_counter() - started)

    async def _fill(self) -> None:
        """Under load, wait (bounded by max_latency_ms) for the batch to fill back up."""
        target = min(self.max_batch_size, self._last_batch)
        if self.max_latency_s <= 0 or target <= 1:
            return
        deadline = self._queue[0].arrived + self.max_latency_s
        while self._queued_rows() < target:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.0005))
            if not self._queue:
                return

    def _queued_rows(self) -> int:
        return sum(p.size for p in self._queue)

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        while self._queue:
            pending = self._queue[0]
            if pending.future.done():  # timed out or cancelled: frees its slot
                self._queue.popleft()
                continue
            if batch and rows + pending.size > self.max_batch_size:
                break
            self._queue.popleft()
            batch.append(pending)
            rows += pending.size
            if rows >= self.max_batch_size:
                break
        return batch

    def _call(self, batch: list[_Pending]) -> list[Any]:
        """Run on the worker thread; never raises (exceptions become per-item results)."""
        items = [p.item for p in batch]
        try:
            results = list(self.fn(items))
            if len(results) != len(items):
                raise RuntimeError(f"batch function returned {len(results)} results "
                                   f"for {len(items)} items")
            return results
        except Exception as exc:  # noqa: BLE001 - isolated below, item by item
            if len(items) == 1:
                return [exc]
        out: list[Any] = []
        for item in items:
            try:
                out.extend(self.fn([item]))
            except Exception as exc:  # noqa: BLE001 - fails only this item's request
                out.append(exc)
        return out

    async def drain(self, timeout_s: float) -> bool:
        """Stop taking new requests and wait for in-flight ones; True if all finished."""
        self._closed = True
        deadline = time.perf_counter() + timeout_s
        while self._outstanding and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        return not self._outstanding

    def close(self) -> None:
        self._closed = True
        for task in (self._task, self._sweeper):
            if task is not None:
                task.cancel()
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
