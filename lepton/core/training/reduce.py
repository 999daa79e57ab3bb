"""Metric states summed across ranks, so a distributed metric equals the one-process metric.

Every built-in metric keeps only sums (correct predictions and counts, a confusion matrix,
score histograms, error totals and counts), so summing each rank's state gives the state of
the whole data set. A state that is still None on one rank (a rank that saw no rows) takes
the others' shape as zeros first. A custom metric with another kind of state (a maximum, a
list of scores) gets a ``reduce_state(all_reduce)`` method called instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

_DTYPES = (torch.int64, torch.float64, torch.float32, torch.int32)


def _state_names(metric: Any) -> list[str]:
    return sorted(k for k, v in vars(metric).items()
                  if k != "device" and (v is None or isinstance(v, torch.Tensor)
                                        or (isinstance(v, int) and not isinstance(v, bool))))


def _shape_of(value: Any) -> list[int]:
    """[present, dtype code, ndim, *shape (padded to 4)] of a state, to agree on across ranks."""
    if not isinstance(value, torch.Tensor):
        return [0, 0, 0, 0, 0, 0, 0]
    code = _DTYPES.index(value.dtype) if value.dtype in _DTYPES else 2
    shape = list(value.shape)[:4]
    return [1, code, value.dim(), *shape, *([0] * (4 - len(shape)))]


def reduce_metrics(metrics: list[list], here: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Sum every metric's state across ranks, in place (all ranks must call it together)."""
    for metric in (m for ms in metrics for m in ms):
        if hasattr(metric, "reduce_state"):
            metric.reduce_state(dist.all_reduce)
            continue
        for name in _state_names(metric):
            value = getattr(metric, name)
            if isinstance(value, int):
                t = here(torch.tensor(value, dtype=torch.int64))
                dist.all_reduce(t)
                setattr(metric, name, int(t))
                continue
            desc = here(torch.tensor(_shape_of(value), dtype=torch.int64))
            dist.all_reduce(desc, op=dist.ReduceOp.MAX)
            present, code, ndim, *shape = desc.tolist()
            if not present:
                continue
            device = value.device if isinstance(value, torch.Tensor) else metric.device
            if value is None:
                value = torch.zeros(shape[:ndim], dtype=_DTYPES[code], device=device)
            t = here(value.clone())
            dist.all_reduce(t)
            setattr(metric, name, t.to(device))
