"""SyncBatchNorm for Lepton's ``BatchNormalization``: batch statistics over the global batch.

torch's ``nn.SyncBatchNorm.convert_sync_batchnorm`` finds only ``nn.BatchNorm*`` modules and
its kernel runs on GPUs only; Lepton's layer calls ``F.batch_norm`` itself. So each layer's
``call`` is replaced (on the instance) by one that sums the rows, the squared deviations and
the counts across ranks with a differentiable ``all_reduce``; its backward sums the
gradients of the statistics across ranks, as ``nn.SyncBatchNorm`` does, so N ranks compute
what one process does on the whole batch.
Inference (``eval()``) uses the moving averages and needs no collective.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.distributed as dist


class _SumAcrossRanks(torch.autograd.Function):
    """all_reduce(SUM) with its gradient: the sum of the gradients across ranks."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _SumAcrossRanks.apply(grad)


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    return _SumAcrossRanks.apply(tensor)


def _synced_call(layer: Any, x: torch.Tensor) -> torch.Tensor:
    if not layer.training:
        return layer.__class__.call(layer, x)
    factor = 1.0 - layer.momentum
    if layer.seen < layer.warmup:
        layer.seen += 1
        layer.batches_seen.fill_(layer.seen)
        factor = max(factor, 1.0 / layer.seen)
    flat = x.reshape(-1, x.shape[-1])  # channels are the last axis
    wide = flat.double()  # sums in float64, as torch's CPU batch norm accumulates them
    stats = torch.cat([wide.sum(0), torch.tensor([float(len(flat))], device=x.device,
                                                 dtype=wide.dtype)])
    stats = all_reduce(stats)
    count = stats[-1]
    mean = stats[:-1] / count
    var = all_reduce(((wide - mean) ** 2).sum(0)) / count
    with torch.no_grad():
        n = float(count)
        unbiased = (var * (n / max(n - 1.0, 1.0))).to(flat.dtype)
        layer.moving_mean.mul_(1 - factor).add_(mean.to(flat.dtype), alpha=factor)
        layer.moving_variance.mul_(1 - factor).add_(unbiased, alpha=factor)
    scale = (torch.rsqrt(var + layer.epsilon)).to(flat.dtype) * layer.gamma
    y = (flat - mean.to(flat.dtype)) * scale + layer.beta
    return y.reshape(x.shape)


def sync_batchnorm(model: torch.nn.Module) -> int:
    """Make every ``BatchNormalization`` in ``model`` use global batch statistics; returns how
    many layers were converted."""
    from lepton.core.layers.normalization import BatchNormalization

    count = 0
    for module in model.modules():
        if isinstance(module, BatchNormalization) and "call" not in vars(module):
            module.call = functools.partial(_synced_call, module)
            count += 1
    return count


def unsync_batchnorm(model: torch.nn.Module) -> None:
    """Back to per-process statistics (e.g. before saving or predicting alone)."""
    for module in model.modules():
        if isinstance(vars(module).get("call"), functools.partial):
            del module.call
