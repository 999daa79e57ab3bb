"""The prediction log: every answered record is written to the store, off the hot path.

The request path only appends a tuple of references (ids, arrays, latency) to a deque. A
background thread turns them into rows (outputs as JSON, a SHA-256 digest of the input and,
when asked, the input itself) and writes them with ``store.log_predictions`` in batches, at most
every ``interval_s`` seconds. The buffer is bounded: when the store cannot keep up, the oldest
entries are dropped and counted rather than growing memory or slowing requests.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

log = logging.getLogger("lepton.serve")


Rows = dict[str, np.ndarray] | list[Any]


def _row(rows: Rows, i: int) -> Any:
    if isinstance(rows, dict):
        return {k: v[i] for k, v in rows.items()}  # the store's JSON encoder takes numpy
    return rows[i]


def _digest(rows: Rows, i: int) -> str:
    """128 bits of SHA-256 (hardware-accelerated on current CPUs) of a row's input bytes."""
    digest = hashlib.sha256()
    if isinstance(rows, dict):
        for name in sorted(rows) if len(rows) > 1 else rows:
            digest.update(np.ascontiguousarray(rows[name][i]))  # the bytes, without a copy
    else:
        digest.update(orjson.dumps(rows[i], option=orjson.OPT_SERIALIZE_NUMPY))
    return digest.hexdigest()[:32]


class PredictionLog:
    """Buffers prediction entries and flushes them to ``store`` from one thread."""

    def __init__(self, store: Any, *, interval_s: float = 0.5, max_pending: int = 100_000,
                 sample_inputs: bool = False,
                 on_drop: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.interval_s = interval_s
        self.sample_inputs = sample_inputs
        self.on_drop = on_drop
        self._pending: collections.deque = collections.deque()
        self._max_pending = max_pending
        self._lock = threading.Lock()  # one flush at a time (background or on demand)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lepton-predlog", daemon=True)
        self._thread.start()
        self.written = 0

    def add(self, ids: list[str], model: str, version: int | None, inputs: Rows, outputs: Rows,
            latency_ms: float) -> None:
        """Record one request's predictions (one id per row); cheap, never blocks.

        ``inputs`` and ``outputs`` are either dicts of arrays (row i is ``array[i]``) or lists
        of JSON-able records (row i is ``list[i]``).
        """
        self._pending.append((ids, model, version, inputs, outputs, latency_ms))
        if len(self._pending) > self._max_pending:
            self._pending.popleft()
            if self.on_drop is not None:
                self.on_drop(1)

    def flush(self) -> int:
        """Write everything buffered so far; returns the number of rows written."""
        with self._lock:
            rows = []
            while self._pending:
                rows.extend(self._rows(self._pending.popleft()))
            if not rows:
                return 0
            try:
                self.store.log_predictions(rows)
            except Exception:  # noqa: BLE001 - the log must not take the server down
                log.exception("could not write %d predictions to the store", len(rows))
                return 0
            self.written += len(rows)
            return len(rows)

    def _rows(self, entry: tuple) -> list[dict[str, Any]]:
        ids, model, version, inputs, outputs, latency_ms = entry
        rows = []
        for i, pid in enumerate(ids):
            row = {"id": pid, "model": model, "version": version, "latency_ms": latency_ms,
                   "outputs": _row(outputs, i), "input_digest": _digest(inputs, i),
                   "input_sample": _row(inputs, i) if self.sample_inputs else None}
            rows.append(row)
        return rows

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
