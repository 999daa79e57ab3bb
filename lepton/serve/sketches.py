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
tests need; ``requests`` still counts them all). Tensors are folded by a ``TensorPlan``
compiled once per served version (all features in one vectorised pass) into arrays that the
window adds up; they become ``fold``'s per-feature dicts once, when the window is written.
Measured at c=64 on the SPEC CNN: about 1 ms of the writer thread per half-second flush,
under 1 % of the server's CPU, a third of it freeing the buffered requests
(``benchmarks/README.md``). Columns named by ``--redact`` are never sketched.

Also here because the retention sweep (``lepton.serve.retention``) folds expiring rows the
same way: ``split_samples`` and ``fold_window`` turn logged input samples into folds.
"""

from __future__ import annotations

import logging
import operator
import random
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from lepton.sketch.folding import (
    TensorPlan,
    add_counts,
    feature_matrix,
    fold_inputs,
    fold_tensor,
    merge_folds,
)

log = logging.getLogger("lepton.serve")
WINDOW_S = 60.0
MAX_FOLD = 128  # requests folded per version and flush (two flushes a second)
Key = tuple[str, "int | None"]
_KEY, _MODEL, _VERSION = operator.itemgetter(0, 1), operator.itemgetter(0), operator.itemgetter(1)


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
    __slots__ = ("start", "requests", "errors", "folds", "counts")

    def __init__(self, start: float) -> None:
        self.start, self.requests, self.errors = start, 0, 0
        self.folds: dict[str, dict] = {}  # records, and tensors a plan cannot fold
        self.counts: dict[str, tuple[TensorPlan, dict[str, np.ndarray]]] = {}  # by tensor

    def sketch(self) -> dict[str, dict]:
        """The window's folds by feature name, as ``fold_inputs`` + ``merge_folds`` give."""
        out: dict[str, dict] = {}
        for name, (plan, counts) in self.counts.items():
            out.update((f"{name}.{f}", v) for f, v in plan.folds(counts).items())
        return merge_folds(out, self.folds)


class TrafficSketches:
    """Per-window folds of served inputs, by (model, registry version); written to the store
    by ``flush`` (the prediction log's writer thread calls it)."""

    def __init__(self, store: Any, *, window_s: float = WINDOW_S,
                 redact: Iterable[str] = ()) -> None:
        self.store = store
        self.window_s = window_s
        self.redact = set(redact)
        self._references: dict[Key, dict[str, Any] | None] = {}
        self._plans: dict[Key, dict[str, TensorPlan]] = {}
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
        reference = None if reference is None else without(reference, self.redact)
        try:
            self._plans[(model, version)] = {name: TensorPlan(sketch_) for name, sketch_ in
                                             (reference or {}).get("inputs", {}).items()}
        except Exception as exc:  # noqa: BLE001 - monitoring must not stop serving
            log.warning("unreadable reference for %s:%s, traffic not sketched: %s", model,
                        version, exc)
            reference = None
        self._references[(model, version)] = reference

    def _window(self, key: Key, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(now)
        return window

    def fold(self, entries: list[tuple[str, int | None, Any]], errors: dict[Key, int],
             now: float | None = None) -> None:
        """Fold buffered ``(model, version, inputs)`` requests and error counts."""
        now = time.time() if now is None else now
        groups = _groups(entries)
        with self._lock:
            for key, count in errors.items():
                self._window(key, now).errors += count
            for key, (total, items) in groups.items():
                window = self._window(key, now)
                window.requests += total
                reference = self._references.get(key)
                if reference is None:
                    continue
                try:
                    tensors, records = _stack(items)
                    if records:
                        window.folds = merge_folds(window.folds,
                                                   fold_inputs(reference, records))
                    if tensors:
                        self._fold_into(window, self._plans.get(key, {}), tensors)
                except Exception as exc:  # noqa: BLE001 - a sketch never fails the log
                    log.warning("could not sketch the traffic of %s:%s: %s", *key, exc)

    @staticmethod
    def _fold_into(window: _Window, plans: dict[str, TensorPlan],
                   inputs: dict[str, np.ndarray]) -> None:
        """Add one version's stacked tensors to its window (all of them or none)."""
        counts: dict[str, dict[str, np.ndarray]] = {}
        folds: dict[str, dict] = {}
        for name, plan in plans.items():
            if name not in inputs or not len(inputs[name]):
                continue
            if plan.ok:
                counts[name] = plan.count(feature_matrix(inputs[name])[1])
            else:
                folds.update((f"{name}.{f}", v) for f, v in zip(
                    plan.names, fold_tensor(plan.sketch, inputs[name]), strict=False))
        for name, count in counts.items():
            previous = window.counts.get(name)
            window.counts[name] = (plans[name], add_counts(previous and previous[1], count))
        if folds:
            window.folds = merge_folds(window.folds, folds)

    def flush(self, now: float | None = None, force: bool = False) -> int:
        """Write the windows that are over (every window when ``force``)."""
        now = time.time() if now is None else now
        with self._lock:
            done = [k for k, w in self._windows.items()
                    if force or now - w.start >= self.window_s]
            windows = [(k, self._windows.pop(k)) for k in done]
        rows = [{"model": k[0], "version": k[1], "window_start": w.start, "window_end": now,
                 "requests": w.requests, "errors": w.errors, "sketch": {"inputs": w.sketch()}}
                for k, w in windows if w.requests or w.errors]
        if not rows:
            return 0
        from lepton.store._monitor import write_sketches

        try:
            return write_sketches(self.store, rows)
        except Exception:  # noqa: BLE001 - the log must not take the server down
            log.exception("could not write %d traffic sketches", len(rows))
            return 0


def _groups(entries: list[tuple[str, int | None, Any]]) -> dict[Key, tuple[int, list[Any]]]:
    """Buffered requests by version: how many, and at most ``MAX_FOLD`` of their inputs (a
    uniform sample). One version served (the usual case) is seen by two C-level passes, with
    no Python loop over the requests."""
    if not entries:
        return {}
    if len(set(map(_MODEL, entries))) == 1 and len(set(map(_VERSION, entries))) == 1:
        total = len(entries)
        chosen = entries if total <= MAX_FOLD else random.sample(entries, MAX_FOLD)
        return {_KEY(entries[0]): (total, [entry[2] for entry in chosen])}
    groups: dict[Key, list[Any]] = {}
    for model, version, inputs in entries:
        groups.setdefault((model, version), []).append(inputs)
    return {key: (len(items), items if len(items) <= MAX_FOLD
                  else random.sample(items, MAX_FOLD)) for key, items in groups.items()}


def _stack(items: list[Any]) -> tuple[dict[str, np.ndarray] | None, list[Any]]:
    """Requests' inputs as one: dicts of arrays (/v2, /v1 arrays) concatenated by name (those
    with the first one's names), and raw records (/v1 through preprocessing) chained."""
    dicts = [i for i in items if isinstance(i, dict)]
    records = [r for item in items if isinstance(item, list) for r in item]
    if not dicts:
        return None, records
    names = set(dicts[0])
    arrays = [i for i in dicts if set(i) == names]
    return {n: np.concatenate([np.asarray(a[n]) for a in arrays]) for n in names}, records
