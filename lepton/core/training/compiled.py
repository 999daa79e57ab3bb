"""What ``compile`` chose (optimizer, losses, metrics, the ``Precision`` and the ``Strategy``),
resolved per model output once the model is built."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from lepton.core import losses as losses_module
from lepton.core import metrics as metrics_module
from lepton.core import optimizers as optimizers_module
from lepton.core.training.precision import Precision
from lepton.core.training.strategy import Strategy
from lepton.errors import ConfigError, LeptonWarning


@dataclass
class CompileSpec:
    optimizer: optimizers_module.Optimizer
    loss: Any
    metrics: Any
    loss_weights: Any
    precision: Precision
    jit_compile: bool
    strategy: Strategy

    @classmethod
    def make(cls, optimizer: Any, loss: Any, metrics: Any, loss_weights: Any, precision: str,
             jit_compile: bool, device: Any, strategy: Strategy | None = None) -> CompileSpec:
        if loss is None:
            raise ConfigError("compile() needs a loss",
                              expected=f"one of {sorted(losses_module._BY_NAME)} or a Loss",
                              received="loss=None", fix="e.g. loss='categorical_crossentropy'")
        if strategy is not None and device not in (None, "auto"):
            raise ConfigError("compile() takes a device or a strategy, not both",
                              received=f"device={device!r}, strategy={strategy!r}",
                              fix="give the device to the strategy: Strategy(device=...)")
        if strategy is None:  # under torchrun: the distributed strategy, unchanged scripts
            from lepton.core.training.distributed import default_strategy

            strategy = default_strategy(device)
        mixed = Precision(precision, strategy.device)
        optimizer = optimizers_module.get(optimizer)
        if optimizer.needs_closure and mixed.scaler.is_enabled():
            raise ConfigError(f"{type(optimizer).__name__} cannot train in fp16: loss scaling "
                              "needs one backward pass per step", received=repr(mixed),
                              fix="compile with precision='bf16' or '32'")
        # Resolve names now so a typo fails at compile time, not after the first epoch.
        for item in _flatten(loss):
            losses_module.get(item)
        for item in _flatten(metrics):
            metrics_module.get(item)
        return cls(optimizer, loss, metrics, loss_weights, mixed, bool(jit_compile), strategy)

    def per_output(self, names: list[str]) -> tuple[list, list[float], list[list]]:
        """Losses, loss weights and fresh metric objects for each named output."""
        losses = [losses_module.get(item) for item in _spread(self.loss, names, "loss")]
        weights = [float(w) for w in _spread(self.loss_weights if self.loss_weights is not None
                                             else 1.0, names, "loss_weights")]
        metric_specs = _spread(self.metrics or [], names, "metrics", per_output_list=True)
        metrics = []
        for i, specs in enumerate(metric_specs):
            objs = [metrics_module.get(s) for s in (specs or [])]
            if isinstance(specs, (list, tuple)) is False and specs is not None:
                objs = [metrics_module.get(specs)]
            for m in objs:
                if len(names) > 1:
                    m.name = f"{names[i]}_{m.name}"
            metrics.append(objs)
        return losses, weights, metrics

    def to_json(self) -> dict:
        def spec(item: Any, module: Any) -> Any:
            if isinstance(item, str):
                return item
            if isinstance(item, (list, tuple)):
                return [spec(i, module) for i in item]
            if isinstance(item, dict):
                return {k: spec(v, module) for k, v in item.items()}
            if hasattr(module, "serialize"):
                return module.serialize(item)
            return getattr(item, "name", None)

        return {"optimizer": optimizers_module.serialize(self.optimizer),
                "loss": spec(self.loss, losses_module),
                "metrics": spec(self.metrics, metrics_module),
                "loss_weights": self.loss_weights, "precision": self.precision.setting,
                "jit_compile": self.jit_compile}


def from_json(config: dict) -> dict:
    """Keyword arguments for ``model.compile`` from ``CompileSpec.to_json()``."""

    def loss(item: Any) -> Any:
        if isinstance(item, dict) and "class_name" in item:
            return losses_module.deserialize(item)
        if isinstance(item, list):
            return [loss(i) for i in item]
        if isinstance(item, dict):
            return {k: loss(v) for k, v in item.items()}
        return item

    return {"optimizer": optimizers_module.deserialize(config["optimizer"]),
            "loss": loss(config["loss"]), "metrics": config.get("metrics"),
            "loss_weights": config.get("loss_weights"),
            "precision": config.get("precision", "auto"),
            "jit_compile": config.get("jit_compile", False)}


def _flatten(item: Any) -> list:
    if item is None:
        return []
    if isinstance(item, dict):
        return [x for v in item.values() for x in _flatten(v)]
    if isinstance(item, (list, tuple)):
        return [x for v in item for x in _flatten(v)]
    return [item]


def _spread(item: Any, names: list[str], what: str, per_output_list: bool = False) -> list:
    """One value per output from a single value, a list in output order, or a dict by name."""
    if isinstance(item, dict):
        unknown = sorted(set(item) - set(names))
        if unknown:
            raise ConfigError(f"compile({what}=...) names outputs the model does not have",
                              expected=f"keys among {names}", received=f"{unknown}")
        return [item.get(n) for n in names]
    if per_output_list:
        if isinstance(item, (list, tuple)) and len(names) > 1 and len(item) == len(names) \
                and all(isinstance(i, (list, tuple)) for i in item):
            return list(item)
        return [item] * len(names)
    if isinstance(item, (list, tuple)):
        if len(item) != len(names):
            raise ConfigError(f"compile({what}=...) must give one entry per output",
                              expected=f"{len(names)} entries for {names}",
                              received=f"{len(item)} entries")
        return list(item)
    return [item] * len(names)


def fold_final_activations(model: Any, losses: list, names: list[str]) -> tuple[list, set[int]]:
    """Each output's loss, on logits where the output's own softmax/sigmoid can be folded
    into it (more exact and faster); returns (losses, indices of the folded outputs)."""
    fold: set[int] = set()
    out = []
    for i, loss in enumerate(losses):
        layer = model.output_layer(i)
        activation = getattr(getattr(layer, "activation", None), "name", None)
        warn_from_logits_on_probabilities(loss, activation, names[i])
        if loss.folds and not loss.from_logits and activation == loss.folds:
            fold.add(i)
            loss = loss.on_logits()
        out.append(loss)
    return out, fold


def warn_from_logits_on_probabilities(loss: Any, activation: str | None, output: str) -> None:
    if getattr(loss, "from_logits", False) and activation == loss.folds:
        warnings.warn(
            f"The loss for output '{output}' has from_logits=True, but the model's last layer "
            f"already applies {activation}: the loss will treat probabilities as logits and "
            f"train poorly. Fix: remove activation='{activation}' from the last layer, or use "
            f"from_logits=False.", LeptonWarning, stacklevel=5)
