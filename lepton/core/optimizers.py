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
    needs_closure = False  # True: the trainer steps it with a closure that re-evaluates the loss

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


class LBFGS(Optimizer):
    """Full-batch quasi-Newton (torch's L-BFGS, strong-Wolfe line search by default): on a
    convex model such as a linear classifier it reaches the optimum in one step of a few
    hundred iterations, where Adam needs hundreds of noisy epochs. Fit with the whole data as
    one batch (``batch_size=len(x)``); each step runs up to ``max_iter`` iterations on it.

    ``weight_decay`` adds ``weight_decay / 2 * ||W||^2`` of the kernels (weights with two or
    more axes, not the biases) to the objective: scikit-learn's L2 penalty.
    """

    torch_class = torch.optim.LBFGS
    needs_closure = True

    def __init__(self, learning_rate: float = 1.0, max_iter: int = 20,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search: str | None = "strong_wolfe",
                 weight_decay: float = 0.0) -> None:
        super().__init__(learning_rate, weight_decay)
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter <= 0:
            raise ConfigError("LBFGS expected a positive int `max_iter`",
                              received=f"max_iter={max_iter!r}", fix="e.g. max_iter=500")
        if line_search not in (None, "strong_wolfe"):
            raise ConfigError("Unknown LBFGS line search", expected="'strong_wolfe' or None",
                              received=repr(line_search))
        self.max_iter, self.history_size = max_iter, int(history_size)
        self.tolerance_grad, self.tolerance_change = float(tolerance_grad), float(tolerance_change)
        self.line_search = line_search

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        params = [p for p in params if p.requires_grad]
        return _PenalizedLBFGS(params, self.weight_decay, lr=self.learning_rate,
                               max_iter=self.max_iter, tolerance_grad=self.tolerance_grad,
                               tolerance_change=self.tolerance_change,
                               history_size=self.history_size, line_search_fn=self.line_search)

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "max_iter": self.max_iter,
                "tolerance_grad": self.tolerance_grad, "tolerance_change": self.tolerance_change,
                "history_size": self.history_size, "line_search": self.line_search,
                "weight_decay": self.weight_decay}


class _PenalizedLBFGS(torch.optim.LBFGS):
    """torch's L-BFGS whose objective adds the L2 penalty of the kernels to the closure's
    loss (torch's L-BFGS has no weight decay of its own), and whose state is tensors and
    numbers only (its curvature history stacked), so a resume state can hold it."""

    HISTORY = ("old_dirs", "old_stps", "ro")
    COUNTS = ("func_evals", "n_iter")

    def __init__(self, params: list[torch.nn.Parameter], weight_decay: float,
                 **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.kernels = [p for p in params if p.dim() > 1]
        self.weight_decay = weight_decay if self.kernels else 0.0

    def step(self, closure: Any) -> Any:  # type: ignore[override]
        if not self.weight_decay:
            return super().step(closure)

        def objective() -> torch.Tensor:
            loss = closure()
            penalty = 0.5 * self.weight_decay * sum((p ** 2).sum() for p in self.kernels)
            penalty.backward()
            return loss + penalty.detach()

        return super().step(objective)

    def state_dict(self) -> dict[str, Any]:
        packed = super().state_dict()
        state = {}
        for index, slots in packed["state"].items():
            slots = {k: v for k, v in slots.items() if v is not None and k != "al"}  # al: scratch
            for key in self.HISTORY:
                if key in slots:
                    slots[key] = torch.stack(slots[key]) if slots[key] else torch.empty(0)
            state[index] = slots
        return {**packed, "state": state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for slots in self.state.values():
            for key in self.HISTORY:
                if key in slots:
                    slots[key] = list(slots[key].unbind(0))
            for key in self.COUNTS:
                if key in slots:
                    slots[key] = int(slots[key])


_BY_NAME: dict[str, type[Optimizer]] = {"adam": Adam, "adamw": AdamW, "sgd": SGD,
                                         "rmsprop": RMSprop, "lbfgs": LBFGS}


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
