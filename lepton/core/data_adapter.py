"""Turns what users pass to ``fit``/``evaluate``/``predict`` (NumPy, pandas, torch, lists,
or an iterable of batches) into lists of tensors, and feeds them by whole-batch indexing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from lepton.errors import DataError, LeptonTypeError, ShapeError


def is_batch_iterable(x: Any) -> bool:
    """A DataLoader, generator or other iterable yielding ``(x, y)`` batches."""
    if isinstance(x, (np.ndarray, torch.Tensor, list, tuple, dict, str, bytes)):
        return False
    if type(x).__module__.startswith("pandas"):
        return False
    return isinstance(x, Iterable)


def to_tensor(value: Any, what: str, integer_ok: bool = False) -> torch.Tensor:
    """One array-like -> a tensor (float32, or int64 token ids where ``integer_ok``)."""
    if type(value).__module__.startswith("pandas"):
        frame = value
        if hasattr(frame, "dtypes") and hasattr(frame.dtypes, "items"):
            bad = [str(c) for c, t in frame.dtypes.items() if not _numeric_kind(t)]
        else:
            bad = [] if _numeric_kind(frame.dtype) else [str(frame.name)]
        if bad:
            raise DataError(f"{what}: columns {bad} are not numeric",
                            fix="encode them first, or train from the file with `lepton train`, "
                            "whose pipeline encodes text and categories")
        value = frame.to_numpy()
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{what} cannot be read as an array",
                            received=type(value).__name__, fix=str(exc)) from None
        if array.dtype == object or array.dtype.kind in "USV":
            raise LeptonTypeError(f"{what} must be numeric", received=f"dtype {array.dtype}",
                                  fix="encode strings/categories as numbers first")
        if array.dtype.kind == "b":
            array = array.astype(np.float32)
        if not array.flags.writeable:
            array = array.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_floating_point():
        return tensor.float() if tensor.dtype != torch.float32 else tensor
    if integer_ok and tensor.dtype in (torch.int64, torch.int32):
        return tensor.long()
    return tensor.float()


def _numeric_kind(dtype: Any) -> bool:
    return getattr(dtype, "kind", "O") in "biuf"


def as_list(x: Any, names: list[str] | None = None, what: str = "x") -> list:
    """Structure of inputs/targets as a list (dicts are read by ``names``)."""
    if isinstance(x, dict):
        if not names:
            raise LeptonTypeError(f"{what} was given as a dict, but the model has no named "
                                  "inputs/outputs", fix="pass a list in model order")
        missing = [n for n in names if n not in x]
        if missing:
            raise ShapeError(f"{what} is missing entries {missing}", expected=f"keys {names}",
                             received=f"keys {sorted(x)}")
        return [x[n] for n in names]
    if isinstance(x, (list, tuple)) and x and not isinstance(x[0], (int, float, np.number)) \
            and hasattr(x[0], "__len__") and _looks_like_arrays(x):
        return list(x)
    return [x]


def _looks_like_arrays(items: list | tuple) -> bool:
    return all(isinstance(i, (np.ndarray, torch.Tensor)) or type(i).__module__.startswith(
        "pandas") for i in items)


def check_lengths(tensors: list[torch.Tensor], what: str) -> int:
    lengths = {len(t) for t in tensors}
    if len(lengths) != 1:
        raise ShapeError(f"{what}: inputs and targets have different numbers of samples",
                         received=f"lengths {[len(t) for t in tensors]}",
                         fix="pass the same number of rows for x and y")
    n = lengths.pop()
    if n == 0:
        raise DataError(f"{what}: no samples", fix="pass at least one row")
    return n


def batches(tensors: list[torch.Tensor], batch_size: int, shuffle: bool,
            generator: torch.Generator | None = None) -> Iterator[list[torch.Tensor]]:
    """Whole-batch indexing: one gather per tensor per step, no per-sample collate."""
    n = len(tensors[0])
    if shuffle:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start: start + batch_size]
            yield [t[index] for t in tensors]
    else:
        for start in range(0, n, batch_size):
            yield [t[start: start + batch_size] for t in tensors]
