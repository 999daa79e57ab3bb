"""Optimizers by name or object. A Lepton optimizer holds its settings until the model's
weights exist (layers are built lazily), then makes the torch optimizer that does the work.
Keras defaults (``Adam(learning_rate=1e-3, epsilon=1e-7)``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from lepton.errors import ConfigError


class Optimizer:
    torch_class: type[torch.optim.Optimizer] = torch.optim.Adam

    def __init__(self, learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 clipnorm: float | None = None) -> None:
        if not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
            raise ConfigError(f"{type(self).__name__} expected a positive `learning_rate`",
                              received=f"learning_rate={learning_rate!r}",
                              fix="e.g. learning_rate=1e-3")
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.clipnorm = clipnorm

    def torch_kwargs(self) -> dict[str, Any]:
        return {"lr": self.learning_rate, "weight_decay": self.weight_decay}

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        params = [p for p in params if p.requires_grad]
        kwargs = self.torch_kwargs()
        if params and params[0].device.type in ("cpu", "cuda") and "foreach" not in kwargs:
            kwargs["foreach"] = True
        return self.torch_class(params, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm}


class Adam(Optimizer):
    torch_class = torch.optim.Adam

    def __init__(self, learning_rate: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, weight_decay: float = 0.0,
                 clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def torch_kwargs(self) -> dict[str, Any]:
        return {**super().torch_kwargs(), "betas": (self.beta_1, self.beta_2),
                "eps": self.epsilon}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class AdamW(Adam):
    torch_class = torch.optim.AdamW

    def __init__(self, learning_rate: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, weight_decay: float = 0.004,
                 clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, clipnorm)


class SGD(Optimizer):
    torch_class = torch.optim.SGD

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0,
                 clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def torch_kwargs(self) -> dict[str, Any]:
        return {**super().torch_kwargs(), "momentum": self.momentum, "nesterov": self.nesterov}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    torch_class = torch.optim.RMSprop

    def __init__(self, learning_rate: float = 1e-3, rho: float = 0.9, epsilon: float = 1e-7,
                 weight_decay: float = 0.0, clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def torch_kwargs(self) -> dict[str, Any]:
        return {**super().torch_kwargs(), "alpha": self.rho, "eps": self.epsilon}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


_BY_NAME: dict[str, type[Optimizer]] = {"adam": Adam, "adamw": AdamW, "sgd": SGD,
                                         "rmsprop": RMSprop}


def get(identifier: str | Optimizer) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ConfigError("Unknown optimizer",
                      expected=f"one of {sorted(_BY_NAME)} or an Optimizer object",
                      received=repr(identifier), fix="e.g. optimizer='adam' or Adam(1e-3)")


def serialize(optimizer: Optimizer) -> dict:
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(spec: dict) -> Optimizer:
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    if spec.get("class_name") not in classes:
        raise ConfigError("Unknown optimizer in artifact", received=repr(spec.get("class_name")))
    return classes[spec["class_name"]](**spec.get("config", {}))
