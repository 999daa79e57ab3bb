"""What the server keeps of its traffic for monitoring without keeping raw inputs: per model
version and per window (``window_s``, a minute by default), each monitored input feature
folded onto its reference's bins (``lepton.sketch.folding.fold_inputs``), with the count
of requests and of failed ones. One ``prediction_sketches`` row per window and version.

Cheap on purpose: the event loop only appends a reference to the request's (already decoded)
inputs; the prediction log's writer thread folds everything buffered at each flush, one
``np.concatenate`` and one fold per tensor for all requests of a version, so a busy server
pays one fold every half second, not one per request. At most ``MAX_FOLD`` requests per
version are folded per flush (a uniform sample when more came: the fold's cost is then
bounded whatever the request rate, and a histogram of a uniform sample is what the drift
tests need; ``requests`` still counts them all). Columns named by ``--redact`` are never
sketched.

Also here because the retention sweep (``lepton.serve.retention``) folds expiring rows the
same way: ``split_samples`` and ``fold_window`` turn logged input samples into folds.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from lepton.sketch.folding import fold_inputs, merge_folds

log = logging.getLogger("lepton.serve")
WINDOW_S = 60.0
MAX_FOLD = 128  # requests folded per version and flush (two flushes a second)
Key = tuple[str, "int | None"]


def split_samples(rows: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], list[Any]]:
    """Logged input samples -> (tensors by name, raw records)."""
    tensors: dict[str, list] = {}
    records: list[Any] = []
    for row in rows:
        sample = row.get("input_sample")
        if sample is None:
            continue
        if isinstance(sample, dict) and all(isinstance(v, list) for v in sample.values()):
            for name, value in sample.items():
                tensors.setdefault(name, []).append(value)
        else:
            records.append(sample)
    arrays = {}
    for name, values in tensors.items():
        try:
            arrays[name] = np.asarray(values, dtype=np.float64)
        except ValueError:
            continue
    return arrays, records


def fold_window(reference: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, dict]:
    """Inputs of the rows that kept them (``--log-inputs``), folded per feature."""
    tensors, records = split_samples(rows)
    folds = fold_inputs(reference, tensors) if tensors else {}
    if records:
        folds = merge_folds(folds, fold_inputs(reference, records))
    return folds


def without(reference: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The reference minus the inputs and columns named (redacted ones are not sketched)."""
    names = set(names)
    out = dict(reference)
    for part in ("inputs", "columns"):
        if isinstance(reference.get(part), dict):
            out[part] = {k: v for k, v in reference[part].items() if k not in names}
    return out


class _Window:
    __slots__ = ("start", "requests", "errors", "folds")

    def __init__(self, start: float) -> None:
        self.start, self.requests, self.errors = start, 0, 0
        self.folds: dict[str, dict] = {}


class TrafficSketches:
    """Per-window folds of served inputs, by (model, registry version); written to the store
    by ``flush`` (the prediction log's writer thread calls it)."""

    def __init__(self, store: Any, *, window_s: float = WINDOW_S,
                 redact: Iterable[str] = ()) -> None:
        self.store = store
        self.window_s = window_s
        self.redact = set(redact)
        self._references: dict[Key, dict[str, Any] | None] = {}
        self._windows: dict[Key, _Window] = {}
        self._lock = threading.Lock()

    def register(self, model: str, version: int | None, path: Any) -> None:
        """Read a served version's reference once (none: its traffic is only counted)."""
        reference = None
        if path is not None:
            try:
                from lepton.artifact.manifest import read_manifest

                reference = read_manifest(path).reference
            except Exception as exc:  # noqa: BLE001 - monitoring must not stop serving
                log.warning("no reference for %s:%s, traffic not sketched: %s", model,
                            version, exc)
        self._references[(model, version)] = (None if reference is None
                                              else without(reference, self.redact))

    def _window(self, key: Key, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(now)
        return window

    def fold(self, entries: list[tuple[str, int | None, Any]], errors: dict[Key, int],
             now: float | None = None) -> None:
        """Fold buffered ``(model, version, inputs)`` requests and error counts."""
        now = time.time() if now is None else now
        groups: dict[Key, list[Any]] = {}
        for model, version, inputs in entries:
            groups.setdefault((model, version), []).append(inputs)
        with self._lock:
            for key, count in errors.items():
                self._window(key, now).errors += count
            for key, items in groups.items():
                window = self._window(key, now)
                window.requests += len(items)
                reference = self._references.get(key)
                if reference is None:
                    continue
                if len(items) > MAX_FOLD:
                    items = random.sample(items, MAX_FOLD)
                try:
                    folded = fold_inputs(reference, _stack(items))
                except Exception as exc:  # noqa: BLE001 - a sketch never fails the log
                    log.warning("could not sketch the traffic of %s:%s: %s", *key, exc)
                    continue
                window.folds = merge_folds(window.folds, folded)

    def flush(self, now: float | None = None, force: bool = False) -> int:
        """Write the windows that are over (every window when ``force``)."""
        now = time.time() if now is None else now
        with self._lock:
            done = [k for k, w in self._windows.items()
                    if force or now - w.start >= self.window_s]
            windows = [(k, self._windows.pop(k)) for k in done]
        rows = [{"model": k[0], "version": k[1], "window_start": w.start, "window_end": now,
                 "requests": w.requests, "errors": w.errors, "sketch": {"inputs": w.folds}}
                for k, w in windows if w.requests or w.errors]
        if not rows:
            return 0
        from lepton.store._monitor import write_sketches

        try:
            return write_sketches(self.store, rows)
        except Exception:  # noqa: BLE001 - the log must not take the server down
            log.exception("could not write %d traffic sketches", len(rows))
            return 0


def _stack(items: list[Any]) -> Any:
    """Requests' inputs as one: dicts of arrays concatenated by name, records chained."""
    if isinstance(items[0], dict):
        names = set(items[0])
        arrays = [i for i in items if isinstance(i, dict) and set(i) == names]
        return {n: np.concatenate([np.asarray(a[n]) for a in arrays]) for n in names}
    return [r for item in items if isinstance(item, list) for r in item]
