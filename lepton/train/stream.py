"""Training batches read slice by slice: from an image memmap (with augmentation) or from a
sparse TF-IDF matrix, so the whole training set never has to sit in memory as float32.

A :class:`BatchStream` is an iterable of ``(x, y, sample_weight)`` batches that
``Model.fit`` accepts; each pass (epoch) reshuffles, reads ``chunk`` rows at a time in file
order, transforms them in one vectorised call, and yields them in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


class BatchStream:
    """Shuffled ``(x, y, w)`` batches from ``read(indices) -> float array`` and labels."""

    def __init__(self, read: Callable[[np.ndarray], np.ndarray], y: np.ndarray,
                 batch_size: int, *, weights: np.ndarray | None = None, seed: int = 0,
                 chunk: int = 8192) -> None:
        self.read, self.y, self.batch_size = read, y, int(batch_size)
        self.weights = weights
        self.rng = np.random.default_rng(seed)
        self.chunk = max(self.batch_size, chunk // self.batch_size * self.batch_size)

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self) -> Iterator[tuple]:
        order = self.rng.permutation(len(self.y))
        for start in range(0, len(order), self.chunk):
            part = order[start:start + self.chunk]
            ranked = np.argsort(part, kind="stable")  # read in file order, keep the shuffle
            x_sorted = self.read(part[ranked])
            x = np.empty_like(x_sorted)
            x[ranked] = x_sorted
            for b in range(0, len(part), self.batch_size):
                idx = part[b:b + self.batch_size]
                xb = x[b:b + self.batch_size]
                if self.weights is None:
                    yield xb, self.y[idx]
                else:
                    yield xb, self.y[idx], self.weights[idx]


def sample_weights(y: np.ndarray, class_weight: dict[int, float] | None) -> np.ndarray | None:
    """Per-row weights from a class -> weight mapping (None stays None)."""
    if not class_weight:
        return None
    table = np.ones(int(max(max(class_weight), int(y.max()))) + 1, np.float32)
    for cls, w in class_weight.items():
        table[int(cls)] = w
    return table[y.astype(np.int64)]
