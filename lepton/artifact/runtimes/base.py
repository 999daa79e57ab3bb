"""What every runtime offers the server: a signature, one batch call, warm-up.

A runtime runs one artifact. ``run`` takes the items of a batch (each a dict of input name ->
array whose first axis is that item's rows), runs them as one batch and returns each item's
outputs in the same order, or an exception for an item that alone is bad (NaN or infinity),
so its neighbours are still answered. It is called from one worker thread, never concurrently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lepton.artifact.signature import DATATYPES, TensorSpec
from lepton.errors import ShapeError

Item = dict[str, np.ndarray]
Result = dict[str, np.ndarray] | Exception


def all_finite(array: np.ndarray) -> bool:
    """Whether every element is finite. The sum of squares is one BLAS pass, about half the
    cost of ``isfinite().all()`` on a small input, and NaN or infinity anywhere makes it
    non-finite. It overflows only for values beyond ~1e19 (NumPy then warns once) and the
    exact check decides. (``np.errstate`` around it would cost more than the check saves.)"""
    flat = array.reshape(-1)
    return math.isfinite(float(np.dot(flat, flat))) or bool(np.isfinite(flat).all())


class Runtime:
    """The interface the server batches against; subclasses implement ``run``."""

    platform = "lepton"

    def __init__(self, name: str, inputs: list[TensorSpec], outputs: list[TensorSpec] | None,
                 *, version: str | None = None, metadata: dict[str, Any] | None = None,
                 path: Path | None = None) -> None:
        self.name = name
        self.version = version
        self.inputs = inputs
        self.outputs = outputs
        self.metadata = metadata or {}
        self.path = path
        self.ready = False

    def run(self, items: Sequence[Item]) -> list[Result]:
        raise NotImplementedError

    @property
    def module(self) -> Any:
        """The in-process model for the raw-record predictor (None when there is none)."""
        return None

    def output_names(self, count: int) -> list[str]:
        if self.outputs is not None and len(self.outputs) == count:
            return [s.name for s in self.outputs]
        return [f"output_{i}" for i in range(count)]

    def split(self, items: Sequence[Item], results: list[np.ndarray]) -> list[Result]:
        """Cut whole-batch outputs back into each item's rows."""
        rows = sum(int(it[self.inputs[0].name].shape[0]) for it in items)
        for r in results:
            if r.ndim == 0 or r.shape[0] != rows:
                raise ShapeError("The model returned a batch of the wrong size",
                                 expected=rows, received=r.shape)
        names = self.output_names(len(results))
        per_item: list[Result] = []
        start = 0
        for it in items:
            stop = start + int(it[self.inputs[0].name].shape[0])
            per_item.append({n: r[start:stop] for n, r in zip(names, results, strict=True)})
            start = stop
        return per_item

    def run_finite(self, items: Sequence[Item]) -> list[Result]:
        """The batch minus its items holding NaN or infinity, which get a ShapeError each."""
        bad: dict[int, Exception] = {}
        for i, item in enumerate(items):
            for name, array in item.items():
                if array.dtype.kind == "f" and not all_finite(array):
                    bad[i] = ShapeError(f"Input '{name}' contains NaN or infinity",
                                        expected="finite numbers", received="NaN/Inf")
                    break
        good = iter(self.run([it for i, it in enumerate(items) if i not in bad])
                    if len(bad) < len(items) else [])
        return [bad[i] if i in bad else next(good) for i in range(len(items))]

    def example(self, rows: int = 1) -> Item:
        """Zeros of the right shape and dtype (variable axes get size 8): for warm-up and bench."""
        out = {}
        for spec in self.inputs:
            shape = [rows] + [8 if d < 0 else d for d in spec.shape[1:]]
            out[spec.name] = np.zeros(shape, dtype=DATATYPES[spec.datatype])
        return out

    def warmup(self, max_batch_size: int) -> None:
        """Run batch sizes 1 and max once so the first real request pays no setup cost."""
        for rows in sorted({1, max_batch_size}):
            self.run([self.example(rows)])
        self.ready = True
