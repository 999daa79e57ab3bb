"""Pooling on channels-last inputs (views in, views out, like the convolutions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lepton.core.layers.base import Layer
from lepton.core.layers.conv import as_tuple, check_padding
from lepton.errors import ShapeError


class _Pool(Layer):
    rank = 2
    op = "max"

    def __init__(self, pool_size: int | Sequence[int] = 2,
                 strides: int | Sequence[int] | None = None, padding: str = "valid",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.pool_size = as_tuple(pool_size, self.rank, owner, "pool_size")
        self.strides = as_tuple(strides if strides is not None else self.pool_size, self.rank,
                                owner, "strides")
        # 'same' pads so that output = ceil(input / stride), as ceil_mode does.
        self.ceil_mode = check_padding(padding, owner) == "same"

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != self.rank + 2:
            raise ShapeError(f"{type(self).__name__} '{self.name}' expects {self.rank + 2}-D "
                             "channels-last input", received=f"shape {input_shape}")

    def call(self, x: torch.Tensor) -> torch.Tensor:
        if self.rank == 2:
            x = x.permute(0, 3, 1, 2)
            pool = F.max_pool2d if self.op == "max" else F.avg_pool2d
            return pool(x, self.pool_size, self.strides, ceil_mode=self.ceil_mode
                        ).permute(0, 2, 3, 1)
        pool = F.max_pool1d if self.op == "max" else F.avg_pool1d
        return pool(x.transpose(1, 2), self.pool_size, self.strides,
                    ceil_mode=self.ceil_mode).transpose(1, 2)


class MaxPooling2D(_Pool):
    rank, op = 2, "max"


class AveragePooling2D(_Pool):
    rank, op = 2, "avg"


class MaxPooling1D(_Pool):
    rank, op = 1, "max"


class AveragePooling1D(_Pool):
    rank, op = 1, "avg"


class _Global(Layer):
    dims: tuple[int, ...] = (1, 2)
    op = "avg"

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != len(self.dims) + 2:
            raise ShapeError(f"{type(self).__name__} '{self.name}' expects "
                             f"{len(self.dims) + 2}-D channels-last input",
                             received=f"shape {input_shape}")

    def call(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "avg":
            return x.mean(dim=self.dims)
        return x.amax(dim=self.dims)


class GlobalAveragePooling2D(_Global):
    dims, op = (1, 2), "avg"


class GlobalMaxPooling2D(_Global):
    dims, op = (1, 2), "max"


class GlobalAveragePooling1D(_Global):
    dims, op = (1,), "avg"


class GlobalMaxPooling1D(_Global):
    dims, op = (1,), "max"
