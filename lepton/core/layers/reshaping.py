"""``ZeroPadding2D``: zeros around channels-last images (Keras' layer, e.g. before a pooling
that torch writes with ``padding=1``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lepton.core.layers.base import Layer
from lepton.errors import ConfigError, ShapeError


def _pairs(padding: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """1 -> ((1, 1), (1, 1)); (1, 2) -> ((1, 1), (2, 2)); ((t, b), (l, r)) as given."""
    def ok(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if ok(padding):
        return (padding, padding), (padding, padding)
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(ok(v) for v in padding):
            return (padding[0], padding[0]), (padding[1], padding[1])
        if all(isinstance(p, (tuple, list)) and len(p) == 2 and all(ok(v) for v in p)
               for p in padding):
            return (tuple(padding[0]), tuple(padding[1]))  # type: ignore[return-value]
    raise ConfigError("ZeroPadding2D expected `padding` as a non-negative int, (rows, cols) "
                      "or ((top, bottom), (left, right))", received=f"padding={padding!r}",
                      fix="for one pixel on every side use ZeroPadding2D(1)")


class ZeroPadding2D(Layer):
    """Pads rows and columns of ``(N, H, W, C)`` images with zeros."""

    def __init__(self, padding: Any = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        (top, bottom), (left, right) = _pairs(padding)
        self.pads = (0, 0, left, right, top, bottom)  # F.pad order: last axis first

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 4:
            raise ShapeError(f"ZeroPadding2D '{self.name}' expects 4-D channels-last input",
                             expected="(batch, height, width, channels)",
                             received=f"shape {input_shape}")

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)
