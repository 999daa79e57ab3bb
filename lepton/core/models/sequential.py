"""``Sequential``: a plain stack, given as a list or grown with ``.add``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lepton.core.layers.base import Layer, deserialize_layer, serialize_layer
from lepton.core.layers.symbolic_tensor import SymbolicTensor
from lepton.core.models.model import Model
from lepton.errors import ConfigError


class Sequential(Model):
    def __init__(self, layers: list[Layer] | None = None, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.stack = nn.ModuleList()
        self.declared_input: tuple[tuple[int, ...], str] | None = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Layer | SymbolicTensor) -> None:
        if isinstance(layer, SymbolicTensor) and not self.stack:
            self.declared_input = (tuple(layer.value.shape[1:]),
                                   str(layer.value.dtype).removeprefix("torch."))
            return
        if not isinstance(layer, Layer):
            raise ConfigError("Sequential.add takes a layer", received=type(layer).__name__,
                              fix="e.g. model.add(Dense(10))")
        if any(existing.name == layer.name for existing in self.stack):
            raise ConfigError("Layer names must be unique within a model",
                              received=f"a second layer named {layer.name!r}")
        self.stack.append(layer)
        if len(self.stack) == 1 and layer.input_shape_arg is not None:
            dtype = "int64" if type(layer).__name__ == "Embedding" else "float32"
            self.declared_input = (layer.input_shape_arg, dtype)
        self.built = False
        if self.declared_input is not None:
            self.build_for([self.declared_input[0]], [self.declared_input[1]])

    @property
    def layers(self) -> list[Layer]:
        return list(self.stack)

    def call(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.stack:
            x = layer(x)
        return x

    def run_outputs(self, inputs: list[torch.Tensor],
                    logits_outputs: frozenset[int] = frozenset()) -> list[torch.Tensor]:
        if not self.stack:
            raise ConfigError("This Sequential model has no layers", fix="add layers first")
        if not logits_outputs:
            return [self(inputs[0])]
        x = inputs[0]
        *body, last = self.stack
        for layer in body:
            x = layer(x)
        return [last.call_logits(x)]

    def output_layer(self, index: int) -> Layer | None:
        return self.stack[-1] if self.stack else None

    @property
    def output_names(self) -> list[str]:
        return [self.stack[-1].name] if self.stack else ["output_1"]

    def expects_token_ids(self) -> list[bool]:
        if self.stack and type(self.stack[0]).__name__ == "Embedding":
            return [True]
        return super().expects_token_ids()

    def get_config(self) -> dict:
        return {"name": self.name, "layers": [serialize_layer(layer) for layer in self.stack]}

    @classmethod
    def from_config(cls, config: dict) -> Sequential:
        return cls([deserialize_layer(spec) for spec in config["layers"]], name=config["name"])
