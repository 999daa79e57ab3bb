"""Small helpers users reach for next to the model API."""

from __future__ import annotations

import numpy as np

from lepton.errors import LabelError


def to_categorical(y: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Class indices -> one-hot float32 rows (Keras' ``to_categorical``)."""
    y = np.asarray(y).reshape(-1)
    if y.size and (y.min() < 0 or not np.issubdtype(y.dtype, np.integer)):
        raise LabelError("to_categorical needs non-negative integer class indices",
                         received=f"dtype {y.dtype}, min {y.min()}")
    num_classes = int(num_classes or (y.max() + 1 if y.size else 0))
    if y.size and y.max() >= num_classes:
        raise LabelError("A class index is >= num_classes",
                         received=f"max {y.max()}, num_classes {num_classes}")
    out = np.zeros((y.size, num_classes), dtype=np.float32)
    out[np.arange(y.size), y] = 1.0
    return out
