"""Activation functions by name. An activation keeps its name so configs and summaries can
show it, and so the trainer can fold a final softmax/sigmoid into the loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lepton.errors import ConfigError


class Activation:
    """A named elementwise (or last-axis) function."""

    __slots__ = ("name", "fn")

    def __init__(self, name: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.name, self.fn = name, fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": _identity,
    "relu": F.relu,
    "relu6": F.relu6,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "hard_sigmoid": F.hardsigmoid,
}


def get(identifier: str | Activation | None) -> Activation:
    """Resolve ``None``, a name, or an Activation."""
    if identifier is None:
        return Activation("linear", _identity)
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str) and identifier in _FUNCTIONS:
        return Activation(identifier, _FUNCTIONS[identifier])
    raise ConfigError(
        "Unknown activation",
        expected=f"one of {sorted(_FUNCTIONS)} or None",
        received=repr(identifier),
        fix="use one of the names above, or a custom Layer for other functions",
    )


def names() -> list[str]:
    return sorted(_FUNCTIONS)
