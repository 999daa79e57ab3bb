"""Depthwise and separable convolutions on channels-last images (MobileNet's building blocks).

A depthwise convolution filters each channel on its own (``groups = channels`` in torch); its
kernel is kept in torch's layout ``(channels * depth_multiplier, 1, kh, kw)`` and channels-last
memory, so torchvision weights load as they are and the permutes around the call are views.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lepton.core.layers.conv import as_tuple, check_padding, resolve_padding
from lepton.core.layers.core import ActivatedLayer, glorot_uniform_, positive_int
from lepton.errors import ShapeError


def _depthwise_settings(layer: Any, kernel_size: Any, strides: Any, padding: Any,
                        depth_multiplier: int, dilation_rate: Any, use_bias: bool,
                        example: str) -> None:
    """The arguments both depthwise layers take, checked and set on ``layer``."""
    owner = type(layer).__name__
    layer.kernel_size = as_tuple(kernel_size, 2, owner, "kernel_size")
    layer.strides = as_tuple(strides, 2, owner, "strides")
    layer.dilation_rate = as_tuple(dilation_rate, 2, owner, "dilation_rate")
    layer.padding = check_padding(padding, owner, 2)
    layer.depth_multiplier = positive_int(depth_multiplier, owner, "depth_multiplier",
                                          f"{owner}({example}, depth_multiplier=1)")
    layer.use_bias = use_bias


def _channels(layer: Any, input_shape: tuple) -> int:
    """The input's channels (one depthwise group each); 4-D channels-last input only."""
    if len(input_shape) != 4:
        raise ShapeError(f"{type(layer).__name__} '{layer.name}' expects 4-D channels-last "
                         "input", expected="(batch, height, width, channels)",
                         received=f"shape {input_shape}")
    return int(input_shape[-1])


class DepthwiseConv2D(ActivatedLayer):
    """One ``kernel_size`` filter per input channel (``depth_multiplier`` of them), no mixing
    across channels. ``padding`` is 'valid', 'same', or explicit symmetric pixels."""

    def __init__(self, kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1,
                 padding: Any = "valid", depth_multiplier: int = 1,
                 dilation_rate: int | Sequence[int] = 1, activation: str | None = None,
                 use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(activation=activation, **kwargs)
        _depthwise_settings(self, kernel_size, strides, padding, depth_multiplier,
                            dilation_rate, use_bias, "3")

    def build(self, input_shape: tuple) -> None:
        self.groups = _channels(self, input_shape)
        out = self.groups * self.depth_multiplier
        receptive = math.prod(self.kernel_size)
        kernel = glorot_uniform_(torch.empty(out, 1, *self.kernel_size), receptive,
                                 self.depth_multiplier * receptive)
        self.kernel = nn.Parameter(kernel.contiguous(memory_format=torch.channels_last))
        self.bias = nn.Parameter(torch.zeros(out)) if self.use_bias else None
        self.pads, self.torch_padding = resolve_padding(
            self.padding, input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        if self.pads:
            x = F.pad(x, self.pads)
        y = F.conv2d(x, self.kernel, self.bias, self.strides, self.torch_padding,
                     self.dilation_rate, self.groups)
        return y.permute(0, 2, 3, 1)


class SeparableConv2D(ActivatedLayer):
    """A depthwise convolution followed by a 1x1 convolution to ``filters`` channels (Keras'
    SeparableConv2D): far fewer weights than a full convolution of the same size."""

    def __init__(self, filters: int, kernel_size: int | Sequence[int],
                 strides: int | Sequence[int] = 1, padding: Any = "valid",
                 depth_multiplier: int = 1, dilation_rate: int | Sequence[int] = 1,
                 activation: str | None = None, use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(activation=activation, **kwargs)
        owner = type(self).__name__
        self.filters = positive_int(filters, owner, "filters", f"{owner}(32, 3)")
        _depthwise_settings(self, kernel_size, strides, padding, depth_multiplier,
                            dilation_rate, use_bias, "32, 3")

    def build(self, input_shape: tuple) -> None:
        self.groups = _channels(self, input_shape)
        middle = self.groups * self.depth_multiplier
        receptive = math.prod(self.kernel_size)
        depthwise = glorot_uniform_(torch.empty(middle, 1, *self.kernel_size), receptive,
                                    self.depth_multiplier * receptive)
        self.depthwise_kernel = nn.Parameter(
            depthwise.contiguous(memory_format=torch.channels_last))
        pointwise = glorot_uniform_(torch.empty(self.filters, middle, 1, 1), middle, self.filters)
        self.pointwise_kernel = nn.Parameter(
            pointwise.contiguous(memory_format=torch.channels_last))
        self.bias = nn.Parameter(torch.zeros(self.filters)) if self.use_bias else None
        self.pads, self.torch_padding = resolve_padding(
            self.padding, input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        if self.pads:
            x = F.pad(x, self.pads)
        y = F.conv2d(x, self.depthwise_kernel, None, self.strides, self.torch_padding,
                     self.dilation_rate, self.groups)
        y = F.conv2d(y, self.pointwise_kernel, self.bias)
        return y.permute(0, 2, 3, 1)
