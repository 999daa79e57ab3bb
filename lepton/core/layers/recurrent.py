"""LSTM, GRU and Bidirectional on ``(N, steps, features)``, backed by torch's fused kernels
(cuDNN on GPU); ``Bidirectional`` asks the same kernel to run both directions."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lepton.core.layers.base import Layer
from lepton.core.layers.core import positive_int
from lepton.errors import ConfigError, ShapeError


class _RNN(Layer):
    kernel: type[nn.RNNBase] = nn.LSTM

    def __init__(self, units: int, return_sequences: bool = False, dropout: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = positive_int(units, type(self).__name__, "units",
                                  f"{type(self).__name__}(64)")
        self.return_sequences = return_sequences
        self.dropout = float(dropout)
        self.bidirectional = False

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 3:
            raise ShapeError(f"{type(self).__name__} '{self.name}' expects sequences",
                             expected="(batch, steps, features)", received=f"shape {input_shape}",
                             fix="put an Embedding before it for token ids")
        self.rnn = self.kernel(input_shape[-1], self.units, batch_first=True,
                               bidirectional=self.bidirectional)

    def call(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropout and self.training:
            x = nn.functional.dropout(x, self.dropout, True)
        out, state = self.rnn(x)
        if self.return_sequences:
            return out
        h = state[0] if isinstance(state, tuple) else state
        if self.bidirectional:
            return torch.cat([h[-2], h[-1]], dim=-1)
        return h[-1]


class LSTM(_RNN):
    kernel = nn.LSTM


class GRU(_RNN):
    kernel = nn.GRU


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and backwards and concatenates the two."""

    def __init__(self, layer: _RNN, merge_mode: str = "concat", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(layer, _RNN):
            raise ConfigError("Bidirectional wraps a recurrent layer",
                              expected="LSTM(...) or GRU(...)", received=type(layer).__name__)
        if merge_mode != "concat":
            raise ConfigError("Bidirectional supports merge_mode='concat'",
                              received=f"merge_mode={merge_mode!r}")
        self.layer = layer
        self.layer.bidirectional = True

    def call(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)
