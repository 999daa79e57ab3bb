"""BatchNormalization and LayerNormalization over the last (channels) axis, Keras defaults."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lepton.core.layers.base import Layer
from lepton.errors import ConfigError


def _permutations(rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Channels last -> axis 1 and back, for a tensor of ``rank`` dimensions."""
    return (0, rank - 1, *range(1, rank - 1)), (0, *range(2, rank), 1)


_PERMUTATIONS = {rank: _permutations(rank) for rank in (3, 4, 5)}


class BatchNormalization(Layer):
    """Normalises the channels axis (last) with batch statistics while training and moving
    averages at inference. ``momentum`` is Keras': moving = momentum * moving + (1-m) * batch.

    Unlike Keras, the moving averages are bias-corrected while they warm up: batch ``n`` is
    averaged in with weight ``max(1 - momentum, 1 / n)``, so the first batch sets them and the
    first ``1 / (1 - momentum)`` batches are a plain mean (as Adam corrects its moments).
    Keras starts from mean 0 and variance 1 and needs hundreds of steps to forget them, so on
    a small data set a model scores far worse in inference mode than while training.
    Pretrained torch weights use ``momentum=0.9, epsilon=1e-5`` (torch's 0.1 is 1 - 0.9).
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ConfigError("BatchNormalization expected `momentum` in [0, 1)",
                              received=f"momentum={momentum!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.warmup = int(round(1.0 / (1.0 - self.momentum)))
        self.seen = 0  # training batches averaged in so far, up to ``warmup`` (a Python int:
        # no host sync per step); mirrored in the ``batches_seen`` buffer for save and resume

    def build(self, input_shape: tuple) -> None:
        channels = input_shape[-1]
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("moving_mean", torch.zeros(channels))
        self.register_buffer("moving_variance", torch.ones(channels))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.int64))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        key = prefix + "batches_seen"
        if key not in state_dict:  # saved before the warm-up existed: its averages are warm
            state_dict[key] = torch.tensor(self.warmup, dtype=torch.int64)
        super()._load_from_state_dict(state_dict, prefix, *args)
        self.seen = int(self.batches_seen)

    def call(self, x: torch.Tensor) -> torch.Tensor:
        # frozen (trainable=False) it runs in inference mode, as in Keras: fine-tuning a
        # pretrained network on a few hundred images must not move its statistics
        training = self.training and self.trainable
        factor = 1.0 - self.momentum
        if training and self.seen < self.warmup and not torch.compiler.is_compiling():
            self.seen += 1
            self.batches_seen.fill_(self.seen)
            factor = max(factor, 1.0 / self.seen)
        # torch wants channels on axis 1; moving the last axis there is a view. The
        # permutation is spelled with positive axes: ONNX export rejects a negative one.
        rank = x.dim()
        if rank <= 2:
            return F.batch_norm(x, self.moving_mean, self.moving_variance, self.gamma,
                                self.beta, training, factor, self.epsilon)
        to_first, to_last = _PERMUTATIONS.get(rank) or _permutations(rank)
        y = F.batch_norm(x.permute(to_first), self.moving_mean, self.moving_variance,
                         self.gamma, self.beta, training, factor, self.epsilon)
        return y.permute(to_last)


class LayerNormalization(Layer):
    def __init__(self, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape: tuple) -> None:
        self.gamma = nn.Parameter(torch.ones(input_shape[-1]))
        self.beta = nn.Parameter(torch.zeros(input_shape[-1]))

    def call(self, x: torch.Tensor) -> torch.Tensor:
        # the width from the weights, not from ``x``: a shape read from the input at trace
        # time is a graph input the ONNX exporter cannot make static
        return F.layer_norm(x, (self.gamma.shape[0],), self.gamma, self.beta, self.epsilon)
