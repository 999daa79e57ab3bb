"""MultiHeadAttention and a Transformer encoder block, on ``(N, steps, features)``; the
attention itself is torch's fused ``scaled_dot_product_attention``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lepton.core.layers.base import Layer
from lepton.core.layers.core import positive_int, rate_in_unit_interval
from lepton.errors import ShapeError


class MultiHeadAttention(Layer):
    """Keras-style: ``mha(query, value, key=None)``; output has the query's feature size."""

    def __init__(self, num_heads: int, key_dim: int, dropout: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_heads = positive_int(num_heads, "MultiHeadAttention", "num_heads",
                                      "MultiHeadAttention(num_heads=4, key_dim=32)")
        self.key_dim = positive_int(key_dim, "MultiHeadAttention", "key_dim",
                                    "MultiHeadAttention(num_heads=4, key_dim=32)")
        self.dropout = rate_in_unit_interval(dropout, "MultiHeadAttention", "dropout")

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 3:
            raise ShapeError(f"MultiHeadAttention '{self.name}' expects sequences",
                             expected="(batch, steps, features)", received=f"shape {input_shape}")
        features, inner = input_shape[-1], self.num_heads * self.key_dim
        self.query_proj = nn.Linear(features, inner)
        self.key_proj = nn.Linear(features, inner)
        self.value_proj = nn.Linear(features, inner)
        self.output_proj = nn.Linear(inner, features)

    def call(self, query: torch.Tensor, value: torch.Tensor | None = None,
             key: torch.Tensor | None = None) -> torch.Tensor:
        value = query if value is None else value
        key = value if key is None else key
        n, steps = query.shape[0], query.shape[1]

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, t.shape[1], self.num_heads, self.key_dim).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            heads(self.query_proj(query)), heads(self.key_proj(key)),
            heads(self.value_proj(value)), dropout_p=self.dropout if self.training else 0.0)
        return self.output_proj(attended.transpose(1, 2).reshape(n, steps, -1))


class TransformerEncoder(Layer):
    """Post-norm encoder block: x + attention, norm, x + feed-forward, norm."""

    def __init__(self, num_heads: int, intermediate_dim: int, dropout: float = 0.1,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_heads = positive_int(num_heads, "TransformerEncoder", "num_heads",
                                      "TransformerEncoder(num_heads=4, intermediate_dim=128)")
        self.intermediate_dim = positive_int(
            intermediate_dim, "TransformerEncoder", "intermediate_dim",
            "TransformerEncoder(num_heads=4, intermediate_dim=128)")
        self.dropout = rate_in_unit_interval(dropout, "TransformerEncoder", "dropout")

    def build(self, input_shape: tuple) -> None:
        features = input_shape[-1]
        if len(input_shape) != 3 or features % self.num_heads:
            raise ShapeError(f"TransformerEncoder '{self.name}' needs (batch, steps, features) "
                             "with features divisible by num_heads",
                             received=f"shape {input_shape}, num_heads={self.num_heads}")
        self.attention = MultiHeadAttention(self.num_heads, features // self.num_heads,
                                            name=f"{self.name}_attention")
        self.norm1 = nn.LayerNorm(features)
        self.norm2 = nn.LayerNorm(features)
        self.ff1 = nn.Linear(features, self.intermediate_dim)
        self.ff2 = nn.Linear(self.intermediate_dim, features)

    def call(self, x: torch.Tensor) -> torch.Tensor:
        drop = self.dropout if self.training else 0.0
        x = self.norm1(x + F.dropout(self.attention(x), drop, self.training))
        ff = self.ff2(F.dropout(F.gelu(self.ff1(x)), drop, self.training))
        return self.norm2(x + F.dropout(ff, drop, self.training))
