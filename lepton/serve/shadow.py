"""The shadow: requests copied to another version, whose answers are compared with the ones the
client got (agreement, score difference, latency) and never returned.

Off the request path by construction: ``offer`` is a ``put_nowait`` on a bounded queue (a full
queue drops the copy and counts it), and the copies run on the mirror's own thread, through the
version's batch function, never through the served batchers or their model thread. A shadow
that sleeps holds only its own thread; one that raises counts an error. Neither can delay or
fail a client request. The same mechanism gives a canary its agreement with the champion when
no feedback labels have come back: the canary's answers are copied to the champion.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger("lepton.serve")
Observer = Callable[[int, int, float, float, int], None]  # agree, rows, diff, seconds, errors


def compare(answer: Any, other: Any) -> tuple[int, int, float]:
    """(rows that agree, rows, summed score difference) between two answers to one request:
    tensors by name (arg-max class, largest absolute change of any score) or records
    (label, or value; largest change of a probability)."""
    if isinstance(answer, dict):
        a = np.asarray(next(iter(answer.values())), dtype=np.float64)
        b = np.asarray(next(iter(other.values())), dtype=np.float64)
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        diff = np.abs(a - b).max(axis=1)
        if a.shape[1] > 1:
            agree = a.argmax(axis=1) == b.argmax(axis=1)
        else:
            agree = np.isclose(a[:, 0], b[:, 0], rtol=1e-3, atol=1e-6)
        return int(agree.sum()), int(a.shape[0]), float(diff.sum())
    agree, total = 0, 0.0
    for x, y in zip(answer, other, strict=True):
        if "value" in x:
            same = bool(np.isclose(float(x["value"]), float(y.get("value", np.nan)), rtol=1e-3))
            total += abs(float(x["value"]) - float(y.get("value", np.nan)))
        else:
            same = str(x.get("label")) == str(y.get("label"))
            px, py = x.get("probabilities") or {}, y.get("probabilities") or {}
            total += max((abs(float(v) - float(py.get(k, 0.0))) for k, v in px.items()),
                         default=0.0)
        agree += same
    return agree, len(answer), total


class Mirror:
    """Copies of answered requests, run on ``served``'s batch functions in one thread."""

    def __init__(self, model: str, arm: str, served: Any, observe: Observer | None = None, *,
                 max_queue: int = 256, max_batch: int = 32) -> None:
        self.model, self.arm, self.served = model, arm, served
        self.observe = observe
        self.max_batch = max_batch
        self.compared = self.agree = self.errors = self.dropped = 0
        self.diff_sum = 0.0
        self.latencies: deque[float] = deque(maxlen=4096)
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._loop, name=f"lepton-shadow-{model}",
                                        daemon=True)
        self._thread.start()

    def offer(self, records: bool, item: Any, outputs: Any) -> None:
        """Queue a copy of a request and the answer it got; drops it when the queue is full."""
        try:
            self._queue.put_nowait((records, item, outputs, time.perf_counter()))
        except queue.Full:
            self.dropped += 1

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            for records in (False, True):
                group = [b for b in batch if b[0] is records]
                if group:
                    self._run(records, group)

    def _run(self, records: bool, group: list[tuple]) -> None:
        batcher = self.served.records if records else self.served.batcher
        try:
            if batcher is None:
                raise TypeError("this version has no record preprocessing")
            results = batcher.fn([g[1] for g in group])
        except Exception as exc:  # noqa: BLE001 - a failing shadow is counted, never raised
            self.errors += len(group)
            log.debug("shadow %s/%s failed: %s", self.model, self.arm, exc)
            if self.observe is not None:
                self.observe(0, 0, 0.0, 0.0, len(group))
            return
        done = time.perf_counter()
        for (_, _, answer, arrived), result in zip(group, results, strict=True):
            seconds = done - arrived
            try:
                if isinstance(result, BaseException):
                    raise result
                agree, rows, diff = compare(answer, result)
            except Exception:  # noqa: BLE001 - an answer that cannot be compared is an error
                self.errors += 1
                if self.observe is not None:
                    self.observe(0, 0, 0.0, seconds, 1)
                continue
            self.compared += rows
            self.agree += agree
            self.diff_sum += diff
            self.latencies.append(seconds)
            if self.observe is not None:
                self.observe(agree, rows, diff, seconds, 0)

    def summary(self) -> dict[str, Any]:
        samples = list(self.latencies)
        return {"arm": self.arm, "version": self.served.labels[1], "compared": self.compared,
                "agreement": self.agree / self.compared if self.compared else None,
                "mean_score_diff": self.diff_sum / self.compared if self.compared else None,
                "errors": self.errors, "dropped": self.dropped,
                "p50_ms": float(np.percentile(samples, 50)) * 1000 if samples else None,
                "p99_ms": float(np.percentile(samples, 99)) * 1000 if samples else None}

    def close(self) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            while True:  # make room for the stop mark: the copies left are not needed
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._queue.put_nowait(None)
        self._thread.join(timeout=5)
