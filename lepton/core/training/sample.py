"""What ``fit`` keeps of its training inputs so that ``Model.save`` can write a reference
profile (``lepton.sketch.reference``) without the training data: a small, deterministic
sample of rows (``ROWS``, fewer for wide rows: at most ``MAX_BYTES`` in all).

Arrays and tensors are sampled once, by a seeded index, before the first step; streams
(generators, DataLoaders, image folders, ``BatchStream``) by a seeded reservoir over the
first epoch's batches, which copies only the rows it keeps. The sample lives on the model
(``model.training_sample``), outside its config and its weights; ``reference_of`` turns it
into a reference at save time: the model's outputs on it (``predict``), the task read from
the compiled loss, the class labels when known and the last epoch's metrics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lepton.errors import LeptonWarning

ROWS = 2000
MAX_BYTES = 64 * 1024 * 1024
SEED = 0
_warned: set[str] = set()


@dataclass
class TrainingSample:
    """Rows of every model input (same rows across inputs), and how many rows they stand for."""

    inputs: list[np.ndarray]
    seen: int
    labels: list[str] | None = None


def capacity(row_bytes: int, rows: int = ROWS) -> int:
    return max(1, min(rows, MAX_BYTES // max(row_bytes, 1)))


def _row_bytes(xs: list[torch.Tensor]) -> int:
    return sum(int(x[0].numel()) * x.element_size() for x in xs if len(x))


def from_arrays(xs: list[torch.Tensor], rows: int = ROWS, seed: int = SEED) -> TrainingSample:
    """A seeded sample of in-memory training rows (copied, so the data itself is not kept)."""
    n = len(xs[0])
    k = min(n, capacity(_row_bytes(xs), rows))
    idx = np.sort(np.random.default_rng(seed).choice(n, k, replace=False))
    return TrainingSample([_numpy(x)[idx] for x in xs], n)


def _numpy(x: torch.Tensor) -> np.ndarray:
    """A CPU tensor's NumPy view (NumPy's fancy indexing of a few rows is cheaper)."""
    return x.detach().cpu().numpy()


class Reservoir:
    """A seeded uniform sample of the rows of a stream of ``(xs, ys, weights)`` batches
    (Vitter's algorithm R, one random draw per row); rows that are not kept are never copied."""

    def __init__(self, rows: int = ROWS, seed: int = SEED, labels: Any = None) -> None:
        self.rows, self.rng = rows, np.random.default_rng(seed)
        self.buffers: list[np.ndarray] | None = None
        self.seen, self.broken = 0, False
        self.labels = [str(v) for v in labels] if isinstance(labels, (list, tuple)) else None

    def add(self, xs: list[torch.Tensor]) -> None:
        if self.broken or not xs or not len(xs[0]):
            return
        arrays = [_numpy(x) for x in xs]
        if self.buffers is None:
            k = capacity(_row_bytes(xs), self.rows)
            self.buffers = [np.empty((k, *a.shape[1:]), dtype=a.dtype) for a in arrays]
        if [a.shape[1:] for a in arrays] != [b.shape[1:] for b in self.buffers]:
            self.broken = True  # rows of varying shape (padded per batch): no sample
            return
        k, b = len(self.buffers[0]), len(xs[0])
        position = np.arange(self.seen, self.seen + b)
        slot = np.where(position < k, position, self.rng.integers(0, position + 1))
        keep = np.nonzero(slot < k)[0]
        if len(keep):
            for buffer, a in zip(self.buffers, arrays):
                buffer[slot[keep]] = a[keep]
        self.seen += b

    def watch(self, source: Iterable[tuple], model: Any) -> Iterator[tuple]:
        """The batches of ``source``, unchanged, each one offered to the reservoir; once
        ``source`` is through, the sample is ``model.training_sample``."""
        for batch in source:
            if not self.broken:
                try:
                    self.add(batch[0])
                except Exception:  # noqa: BLE001 - a sample is never worth failing fit
                    self.broken = True
            yield batch
        model.training_sample = self.sample()

    def sample(self) -> TrainingSample | None:
        if self.broken or self.buffers is None or not self.seen:
            return None
        k = min(self.seen, len(self.buffers[0]))
        return TrainingSample([b[:k] for b in self.buffers], self.seen, self.labels)


# -- the reference, at save time -------------------------------------------------------------
def task_of(model: Any) -> str | None:
    """``regression``, ``binary`` or ``multiclass``, read from the first output's loss."""
    from lepton.core import losses

    if model.compiled is None:
        return None
    loss = model.compiled.per_output(list(model.output_names))[0][0]
    if isinstance(loss, losses._Regression):
        return "regression"
    return "binary" if isinstance(loss, losses.BinaryCrossentropy) else "multiclass"


def _metrics(model: Any) -> dict[str, float]:
    history = getattr(getattr(model, "history", None), "history", None) or {}
    out = {}
    for name, values in history.items():
        if name != "learning_rate" and values and isinstance(values[-1], (int, float)) \
                and math.isfinite(values[-1]):
            out[name] = float(values[-1])
    return out


def _embeddings(model: Any, xs: list[np.ndarray]) -> np.ndarray | None:
    """Penultimate-layer vectors for image- or token-like inputs (tables have per-column
    sketches); all the model's inputs go in, the first decides."""
    from lepton.core.embeddings import penultimate

    if xs[0].ndim < 3 and xs[0].dtype.kind not in "iu":
        return None
    return penultimate(model, xs[0] if len(xs) == 1 else xs)


def reference_of(model: Any, metadata: dict | None = None) -> dict[str, Any] | None:
    """The reference profile of ``model`` on its training sample (None without one); class
    labels from the stream's ``class_names`` or the ``labels`` of ``metadata``."""
    from lepton.sketch.reference import check_reference, reference_for, sketch

    sample: TrainingSample | None = getattr(model, "training_sample", None)
    if sample is None or not sample.inputs or not len(sample.inputs[0]):
        return None
    names = list(model.input_names)
    xs = sample.inputs
    outputs = model.predict(xs[0] if len(xs) == 1 else xs, batch_size=256)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    out_names = list(model.output_names)
    meta = metadata if isinstance(metadata, dict) else model.metadata
    meta_labels = (meta or {}).get("labels")
    labels = sample.labels or ([str(v) for v in meta_labels]
                               if isinstance(meta_labels, list) else None)
    ref = reference_for(xs[0], outputs[0], input_name=names[0], output_name=out_names[0],
                        task=task_of(model), labels=labels, metrics=_metrics(model) or None,
                        embeddings=_embeddings(model, xs))
    for name, x in zip(names[1:], xs[1:]):
        ref["inputs"][name] = sketch(x)
    for name, out in zip(out_names[1:], outputs[1:]):
        ref["outputs"][name] = sketch(out)
    ref["sample"] = {"rows": len(xs[0]), "of": sample.seen}
    return check_reference(ref)


def safe_reference_of(model: Any, metadata: dict | None = None) -> dict[str, Any] | None:
    """``reference_of``; a failure warns (once per kind of failure) and gives None, because
    saving the model matters more than its monitoring profile."""
    try:
        return reference_of(model, metadata)
    except Exception as exc:  # noqa: BLE001 - monitoring is optional, the model is not
        kind = type(exc).__name__
        if kind not in _warned:
            _warned.add(kind)
            warnings.warn(f"Model.save wrote no reference profile ({kind}: {exc}); "
                          "`lepton monitor --reference DATA` can make one later",
                          LeptonWarning, stacklevel=3)
        return None
