"""Merging layers for the functional API: Concatenate and Add."""

from __future__ import annotations

from typing import Any

import torch

from lepton.core.layers.base import Layer
from lepton.errors import ShapeError


class _Merge(Layer):
    def build(self, input_shape: Any) -> None:
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ShapeError(f"{type(self).__name__} '{self.name}' merges a list of tensors",
                             expected="a list of at least 2 tensors",
                             received=f"{input_shape}", fix="call it as layer([a, b])")


class Concatenate(_Merge):
    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(inputs, dim=self.axis)


class Add(_Merge):
    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        if len({tuple(s[1:]) for s in input_shape}) != 1:
            raise ShapeError(f"Add '{self.name}' needs inputs of one shape",
                             received=f"shapes {[tuple(s) for s in input_shape]}")

    def call(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out
