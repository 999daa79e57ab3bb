"""What calling a layer on a placeholder records: the ``SymbolicTensor`` that flows through
the functional API and the ``Node`` that made it.

Kept apart from ``layers.base`` (which calls into it) and ``layers.symbolic`` (``Input`` and
the graph, which need ``Layer``): this module imports neither, so the three form no circle.
A layer is typed ``Any`` here for that reason.
"""

from __future__ import annotations

from typing import Any

import torch

from lepton.errors import ConfigError


class SymbolicTensor:
    """A placeholder flowing through the functional API: an example value (batch of 2) that
    gives shapes and dtypes, and the node that produced it."""

    __slots__ = ("value", "node", "index")

    def __init__(self, value: torch.Tensor, node: Node, index: int = 0) -> None:
        self.value, self.node, self.index = value, node, index

    @property
    def shape(self) -> tuple:
        return (None, *self.value.shape[1:])

    @property
    def dtype(self) -> torch.dtype:
        return self.value.dtype

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype}>"


class Node:
    """One call of a layer (``layer is None`` for an Input)."""

    __slots__ = ("layer", "arg_spec", "inputs", "kwargs", "outputs", "input_name")

    def __init__(self, layer: Any, arg_spec: list, inputs: list[SymbolicTensor],
                 kwargs: dict, input_name: str | None = None) -> None:
        self.layer, self.arg_spec, self.inputs, self.kwargs = layer, arg_spec, inputs, kwargs
        self.outputs: list[SymbolicTensor] = []
        self.input_name = input_name


def is_symbolic(x: Any) -> bool:
    """A placeholder, or a non-empty list of them (what a merge layer is called on)."""
    if isinstance(x, (list, tuple)):
        return bool(x) and all(isinstance(t, SymbolicTensor) for t in x)
    return isinstance(x, SymbolicTensor)


def fill(spec: list, values: list) -> list:
    """Positional arguments from a spec of slot numbers (a list for a list argument)."""
    return [[values[j] for j in s] if isinstance(s, list) else values[s] for s in spec]


def call_symbolic(layer: Any, args: tuple, kwargs: dict) -> Any:
    """Call ``layer`` on placeholders: build it on the example values, record a Node."""
    flat: list[SymbolicTensor] = []
    spec: list = []
    for arg in args:
        if isinstance(arg, SymbolicTensor):
            spec.append(len(flat))
            flat.append(arg)
        elif isinstance(arg, (list, tuple)) and all(isinstance(a, SymbolicTensor) for a in arg):
            spec.append(list(range(len(flat), len(flat) + len(arg))))
            flat.extend(arg)
        else:
            raise ConfigError(
                f"{layer.name} was called with a mix of placeholders and other values",
                expected="Input placeholders (or lists of them) as positional arguments",
                received=type(arg).__name__,
                fix="wrap constants in a layer, or pass them as keyword arguments",
            )
    values = fill(spec, [t.value for t in flat])
    was_training = layer.training
    layer.eval()
    try:
        with torch.no_grad():
            out = layer(*values, **kwargs)
    finally:
        layer.train(was_training)
    node = Node(layer, spec, flat, kwargs)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    node.outputs = [SymbolicTensor(o, node, i) for i, o in enumerate(outs)]
    return node.outputs if isinstance(out, (list, tuple)) else node.outputs[0]
