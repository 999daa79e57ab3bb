"""Core layers: Dense, Activation, ReLU, Dropout, Flatten, Reshape, Rescaling, Embedding."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lepton.core import activations
from lepton.core.layers.base import Layer
from lepton.errors import ConfigError, ShapeError


def positive_int(value: Any, owner: str, arg: str, example: str) -> int:
    """Validate a positive int argument with a Keras-grade message."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{owner} expected `{arg}` to be a positive int",
                          received=f"{arg}={value!r}", fix=f"for example {example}")
    return value


def rate_in_unit_interval(value: Any, owner: str, arg: str = "rate") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"Invalid value for argument `{arg}` of {owner}",
                          expected="a float in [0, 1)", received=f"{arg}={value!r}")
    return float(value)


def glorot_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """Keras' default initializer: U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return weight.uniform_(-limit, limit)


class ActivatedLayer(Layer):
    """A layer whose last step is an optional activation; ``call_logits`` skips it so the
    trainer can fold a final softmax/sigmoid into the loss."""

    def __init__(self, activation: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))

    def call_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class Dense(ActivatedLayer):
    """Fully connected layer on the last axis. On image feature maps ``(N, H, W, C)`` it
    flattens them first (and says so in ``summary()``), so ``Conv2D -> Pool -> Dense`` works."""

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(activation=activation, **kwargs)
        self.units = positive_int(units, "Dense", "units", "Dense(64)")
        self.use_bias = use_bias
        self.flatten_input = False

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) < 2:
            raise ShapeError(f"Dense '{self.name}' needs inputs with a batch axis and features",
                             expected="(batch, features)", received=f"shape {input_shape}",
                             fix="reshape 1-D data to (N, 1)")
        if len(input_shape) == 4:
            self.flatten_input = True
            in_features = math.prod(input_shape[1:])
            self.note = f"flattens {tuple(input_shape[1:])} -> {in_features} features"
        else:
            in_features = input_shape[-1]
        self.kernel = nn.Parameter(glorot_uniform_(torch.empty(self.units, in_features),
                                                   in_features, self.units))
        self.bias = nn.Parameter(torch.zeros(self.units)) if self.use_bias else None

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten_input:
            x = x.flatten(1)
        return F.linear(x, self.kernel, self.bias)


class Activation(ActivatedLayer):
    """Applies an activation by name (``'relu'``, ``'softmax'`` on the last axis, ...)."""

    def __init__(self, activation: str, **kwargs: Any) -> None:
        super().__init__(activation=activation, **kwargs)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ReLU(Layer):
    """Keras' ReLU: ``min(max(x, threshold), max_value)``, with ``negative_slope * (x -
    threshold)`` below the threshold. ``ReLU(6.0)`` is MobileNet's ReLU6.

    ``inplace=True`` overwrites its input at inference (never while gradients are
    recorded), sparing a fresh feature map per call, which on a CPU costs more than the
    arithmetic; only for inputs no other layer reads (the applications use it after
    BatchNormalization).
    """

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, inplace: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for arg, value in (("max_value", max_value), ("negative_slope", negative_slope),
                           ("threshold", threshold)):
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, (int, float)) or value < 0):
                raise ConfigError(f"ReLU expected `{arg}` to be a non-negative number",
                                  received=f"{arg}={value!r}", fix="for ReLU6 use ReLU(6.0)")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope, self.threshold = float(negative_slope), float(threshold)
        self.inplace = bool(inplace)

    def call(self, x: torch.Tensor) -> torch.Tensor:
        if self.negative_slope == 0.0 and self.threshold == 0.0:
            inplace = self.inplace and not torch.is_grad_enabled()
            if self.max_value is None:
                return F.relu(x, inplace=inplace)
            return F.hardtanh(x, 0.0, self.max_value, inplace=inplace)
        y = torch.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        return y if self.max_value is None else y.clamp(max=self.max_value)


class Dropout(Layer):
    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = rate_in_unit_interval(rate, "Dropout")

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.rate, self.training)


class Flatten(Layer):
    """Flattens all but the batch axis, in channels-last (Keras) order."""

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class Reshape(Layer):
    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(target_shape, (list, tuple)) or not all(
            isinstance(d, int) and (d > 0 or d == -1) for d in target_shape
        ):
            raise ConfigError("Reshape expected `target_shape` as a tuple of positive ints "
                              "(one may be -1)", received=f"target_shape={target_shape!r}")
        self.target_shape = tuple(target_shape)

    def build(self, input_shape: tuple) -> None:
        size, known = math.prod(input_shape[1:]), math.prod(d for d in self.target_shape if d > 0)
        if (-1 in self.target_shape and size % known) or (-1 not in self.target_shape
                                                          and size != known):
            raise ShapeError(f"Reshape '{self.name}' cannot fit {input_shape[1:]} into "
                             f"{self.target_shape}", expected=f"{size} elements per sample",
                             received=f"target_shape={self.target_shape}")

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.target_shape)


class Rescaling(Layer):
    """``x * scale + offset``, e.g. ``Rescaling(1 / 255)`` for uint8 images."""

    def __init__(self, scale: float, offset: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale, self.offset = float(scale), float(offset)

    def call(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            x = x.float()
        return x * self.scale + self.offset


class Embedding(Layer):
    """Token ids ``(N, L)`` -> vectors ``(N, L, output_dim)``."""

    def __init__(self, input_dim: int, output_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_dim = positive_int(input_dim, "Embedding", "input_dim", "Embedding(10000, 64)")
        self.output_dim = positive_int(output_dim, "Embedding", "output_dim",
                                       "Embedding(10000, 64)")

    def build(self, input_shape: tuple) -> None:
        self.embeddings = nn.Parameter(torch.empty(self.input_dim, self.output_dim)
                                       .uniform_(-0.05, 0.05))

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return F.embedding(x.long(), self.embeddings)
