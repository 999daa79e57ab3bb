"""BatchNormalization and LayerNormalization over the last (channels) axis, Keras defaults."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lepton.core.layers.base import Layer
from lepton.errors import ConfigError


class BatchNormalization(Layer):
    """Normalises the channels axis (last) with batch statistics while training and moving
    averages at inference. ``momentum`` is Keras': moving = momentum * moving + (1-m) * batch."""

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ConfigError("BatchNormalization expected `momentum` in [0, 1)",
                              received=f"momentum={momentum!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)

    def build(self, input_shape: tuple) -> None:
        channels = input_shape[-1]
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("moving_mean", torch.zeros(channels))
        self.register_buffer("moving_variance", torch.ones(channels))

    def call(self, x: torch.Tensor) -> torch.Tensor:
        # torch wants channels on axis 1; moving the last axis there is a view.
        moved = x.movedim(-1, 1) if x.dim() > 2 else x
        y = F.batch_norm(moved, self.moving_mean, self.moving_variance, self.gamma, self.beta,
                         self.training, 1.0 - self.momentum, self.epsilon)
        return y.movedim(1, -1) if x.dim() > 2 else y


class LayerNormalization(Layer):
    def __init__(self, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape: tuple) -> None:
        self.gamma = nn.Parameter(torch.ones(input_shape[-1]))
        self.beta = nn.Parameter(torch.zeros(input_shape[-1]))

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.gamma, self.beta, self.epsilon)
