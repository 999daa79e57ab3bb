"""Convolutions on channels-last inputs.

``Conv2D`` takes ``(N, H, W, C)``; ``x.permute(0, 3, 1, 2)`` of such a tensor *is* a
channels-last ``(N, C, H, W)`` tensor, which is what oneDNN/cuDNN run fastest, so the permutes
on the way in and out are free views.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lepton.core.layers.core import ActivatedLayer, glorot_uniform_, positive_int
from lepton.errors import ConfigError, ShapeError


def as_tuple(value: int | Sequence[int], n: int, owner: str, arg: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * n
    value = tuple(value)
    if len(value) != n or not all(isinstance(v, int) and v > 0 for v in value):
        raise ConfigError(f"{owner} expected `{arg}` to be a positive int or {n} of them",
                          received=f"{arg}={value!r}")
    return value


def check_padding(padding: Any, owner: str, rank: int | None = None) -> Any:
    """'valid' or 'same'; where ``rank`` is given (convolutions) also explicit symmetric
    padding, an int or one per spatial axis, as torchvision's networks are written (a
    stride-2 'same' pads one side only, which pretrained torch weights did not see)."""
    if padding in ("valid", "same"):
        return padding
    if rank is not None:
        values = (padding,) * rank if isinstance(padding, int) else padding
        if isinstance(values, (tuple, list)) and len(values) == rank and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            return padding if isinstance(padding, int) else tuple(values)
    allowed = "'valid' or 'same'" + (f", or a non-negative int (or {rank} of them)"
                                     if rank is not None else "")
    raise ConfigError(f"{owner} expected `padding` {allowed}", received=f"padding={padding!r}")


def resolve_padding(padding: Any, spatial: tuple, kernel: tuple, strides: tuple,
                    dilation: tuple) -> tuple[list[int] | None, Any]:
    """(explicit F.pad amounts or None, the ``padding`` argument for torch's convolution)."""
    rank = len(kernel)
    if padding == "same" and any(s > 1 for s in strides):
        return [p for i in reversed(range(rank)) for p in same_pads(
            spatial[i], kernel[i], strides[i], dilation[i])], 0
    if isinstance(padding, int):
        return None, (padding,) * rank
    return None, padding


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow 'same' padding: output = ceil(size / stride), extra pad at the end."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class _Conv(ActivatedLayer):
    rank = 2

    def __init__(self, filters: int, kernel_size: int | Sequence[int],
                 strides: int | Sequence[int] = 1, padding: Any = "valid",
                 dilation_rate: int | Sequence[int] = 1, activation: str | None = None,
                 use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(activation=activation, **kwargs)
        owner = type(self).__name__
        self.filters = positive_int(filters, owner, "filters", f"{owner}(32, 3)")
        self.kernel_size = as_tuple(kernel_size, self.rank, owner, "kernel_size")
        self.strides = as_tuple(strides, self.rank, owner, "strides")
        self.dilation_rate = as_tuple(dilation_rate, self.rank, owner, "dilation_rate")
        self.padding = check_padding(padding, owner, self.rank)
        self.use_bias = use_bias

    def build(self, input_shape: tuple) -> None:
        owner = type(self).__name__
        if len(input_shape) != self.rank + 2:
            layout = "(batch, height, width, channels)" if self.rank == 2 else \
                "(batch, steps, channels)"
            fix = ("add a channel axis, e.g. x[..., None] for grayscale images"
                   if len(input_shape) == self.rank + 1 else "reshape the input to " + layout)
            raise ShapeError(f"{owner} '{self.name}' expects {self.rank + 2}-D channels-last "
                             "input", expected=layout, received=f"shape {input_shape}", fix=fix)
        in_channels = input_shape[-1]
        shape = (self.filters, in_channels, *self.kernel_size)
        receptive = 1
        for k in self.kernel_size:
            receptive *= k
        self.kernel = nn.Parameter(glorot_uniform_(torch.empty(shape), in_channels * receptive,
                                                   self.filters * receptive))
        self.bias = nn.Parameter(torch.zeros(self.filters)) if self.use_bias else None
        self.pads, self.torch_padding = resolve_padding(
            self.padding, input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate)


class Conv2D(_Conv):
    """2-D convolution on ``(N, H, W, C)`` images; weights in channels-last memory."""

    rank = 2

    def build(self, input_shape: tuple) -> None:
        super().build(input_shape)
        self.kernel.data = self.kernel.data.contiguous(memory_format=torch.channels_last)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        if self.pads:
            x = F.pad(x, self.pads)
        y = F.conv2d(x, self.kernel, self.bias, self.strides, self.torch_padding,
                     self.dilation_rate)
        return y.permute(0, 2, 3, 1)


class Conv1D(_Conv):
    """1-D convolution on ``(N, steps, C)`` sequences."""

    rank = 1

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        if self.pads:
            x = F.pad(x, self.pads)
        y = F.conv1d(x, self.kernel, self.bias, self.strides, self.torch_padding,
                     self.dilation_rate)
        return y.transpose(1, 2)
