"""Losses by name or object. Each returns one value per sample so the trainer can apply
sample/class weights; each checks, once per ``fit``, that the labels fit it."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lepton.errors import ConfigError, LabelError

_EPS = 1e-7


class Loss:
    name = "loss"
    #: the final activation this loss can absorb when computed on logits
    folds: str | None = None

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = from_logits

    def __call__(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        """Per-sample loss, shape (N,)."""
        raise NotImplementedError

    def on_logits(self) -> Loss:
        """The same loss, computed on pre-activation outputs."""
        return type(self)(**{**self.get_config(), "from_logits": True})

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits}

    def check_labels(self, y: torch.Tensor, output_shape: tuple, where: str) -> None:
        """Raise LabelError when ``y`` cannot be scored against outputs of ``output_shape``."""
        if y.is_complex() or y.dtype == torch.bool:
            return
        if not (y.is_floating_point() or y.dtype in (torch.int64, torch.int32, torch.uint8,
                                                       torch.int16, torch.int8)):
            raise LabelError(f"{where}: labels must be numbers", received=f"dtype {y.dtype}",
                             fix="encode class names as integers first")


def _per_sample(loss: torch.Tensor) -> torch.Tensor:
    return loss.reshape(loss.shape[0], -1).mean(dim=1) if loss.dim() > 1 else loss


class SparseCategoricalCrossentropy(Loss):
    name, folds = "sparse_categorical_crossentropy", "softmax"

    def __call__(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        classes = y_pred.shape[-1]
        target = y_true.reshape(-1).long()
        flat = y_pred.reshape(-1, classes)
        if self.from_logits:
            loss = F.cross_entropy(flat, target, reduction="none")
        else:
            loss = F.nll_loss(flat.float().clamp_min(_EPS).log(), target, reduction="none")
        return _per_sample(loss.view(y_pred.shape[0], -1))

    def check_labels(self, y: torch.Tensor, output_shape: tuple, where: str) -> None:
        super().check_labels(y, output_shape, where)
        classes = output_shape[-1]
        expected = tuple(output_shape[:-1])
        if tuple(y.shape) not in (expected, (*expected, 1)):
            fix = ("the labels look one-hot: use loss='categorical_crossentropy', or pass "
                   "class indices" if tuple(y.shape) == tuple(output_shape) else
                   f"pass one class index per sample, shape {expected}")
            raise LabelError(f"{where}: labels do not fit sparse_categorical_crossentropy",
                             expected=f"class indices of shape {expected}",
                             received=f"shape {tuple(y.shape)}", fix=fix)
        if y.is_floating_point() and not torch.equal(y, y.round()):
            raise LabelError(f"{where}: sparse_categorical_crossentropy needs integer class "
                             "indices", received="fractional values",
                             fix="use 'categorical_crossentropy' for soft labels")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise LabelError(f"{where}: class indices out of range for a {classes}-way output",
                             expected=f"0 <= y < {classes}",
                             received=f"min {int(y.min())}, max {int(y.max())}",
                             fix=f"give the last layer {int(y.max()) + 1} units, or re-map labels")


class CategoricalCrossentropy(Loss):
    name, folds = "categorical_crossentropy", "softmax"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        super().__init__(from_logits)
        self.label_smoothing = float(label_smoothing)

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    def __call__(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        classes = y_pred.shape[-1]
        target = y_true.reshape(-1, classes).to(y_pred.dtype)
        flat = y_pred.reshape(-1, classes)
        if self.from_logits:
            loss = F.cross_entropy(flat, target, reduction="none",
                                   label_smoothing=self.label_smoothing)
        else:
            if self.label_smoothing:
                target = target * (1 - self.label_smoothing) + self.label_smoothing / classes
            loss = -(target * flat.float().clamp_min(_EPS).log()).sum(dim=-1)
        return _per_sample(loss.view(y_pred.shape[0], -1))

    def check_labels(self, y: torch.Tensor, output_shape: tuple, where: str) -> None:
        super().check_labels(y, output_shape, where)
        if tuple(y.shape) != tuple(output_shape):
            looks_sparse = tuple(y.shape) in (tuple(output_shape[:-1]),
                                              (*output_shape[:-1], 1))
            fix = ("the labels look like class indices: use "
                   "loss='sparse_categorical_crossentropy', or one-hot them with "
                   "lepton.core.utils.to_categorical(y, num_classes)" if looks_sparse else
                   "one-hot encode the labels to match the output")
            raise LabelError(f"{where}: labels do not fit categorical_crossentropy",
                             expected=f"one-hot labels of shape {tuple(output_shape)}",
                             received=f"shape {tuple(y.shape)}", fix=fix)


class BinaryCrossentropy(Loss):
    name, folds = "binary_crossentropy", "sigmoid"

    def __call__(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        target = y_true.reshape(y_pred.shape).to(y_pred.dtype)
        if self.from_logits:
            loss = F.binary_cross_entropy_with_logits(y_pred, target, reduction="none")
        else:
            loss = F.binary_cross_entropy(y_pred.float().clamp(_EPS, 1 - _EPS), target.float(),
                                          reduction="none")
        return _per_sample(loss)

    def check_labels(self, y: torch.Tensor, output_shape: tuple, where: str) -> None:
        super().check_labels(y, output_shape, where)
        if y.numel() != y.shape[0] * _prod(output_shape[1:]):
            raise LabelError(f"{where}: labels do not fit binary_crossentropy",
                             expected=f"one 0/1 label per output unit, shape {output_shape}",
                             received=f"shape {tuple(y.shape)}",
                             fix="for several classes use sparse_categorical_crossentropy and "
                             "a softmax output")
        if y.numel() and (float(y.min()) < 0 or float(y.max()) > 1):
            raise LabelError(f"{where}: binary_crossentropy needs labels in [0, 1]",
                             received=f"min {float(y.min())}, max {float(y.max())}",
                             fix="map the two classes to 0 and 1")


class _Regression(Loss):
    def check_labels(self, y: torch.Tensor, output_shape: tuple, where: str) -> None:
        super().check_labels(y, output_shape, where)
        if y.numel() != y.shape[0] * _prod(output_shape[1:]):
            raise LabelError(f"{where}: targets do not fit the model's output",
                             expected=f"shape {output_shape}", received=f"shape {tuple(y.shape)}",
                             fix="give the last layer as many units as there are targets")


class MeanSquaredError(_Regression):
    name = "mse"

    def __call__(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return _per_sample((y_pred - y_true.reshape(y_pred.shape).to(y_pred.dtype)) ** 2)


class MeanAbsoluteError(_Regression):
    name = "mae"

    def __call__(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return _per_sample((y_pred - y_true.reshape(y_pred.shape).to(y_pred.dtype)).abs())


class Huber(_Regression):
    name = "huber"

    def __init__(self, delta: float = 1.0, from_logits: bool = False) -> None:
        super().__init__(from_logits)
        self.delta = float(delta)

    def get_config(self) -> dict:
        return {"delta": self.delta, "from_logits": self.from_logits}

    def __call__(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        return _per_sample(F.huber_loss(y_pred, y_true.reshape(y_pred.shape).to(y_pred.dtype),
                                        reduction="none", delta=self.delta))


def _prod(shape: Any) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


_BY_NAME: dict[str, type[Loss]] = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
}


def get(identifier: str | Loss) -> Loss:
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ConfigError("Unknown loss", expected=f"one of {sorted(_BY_NAME)} or a Loss object",
                      received=repr(identifier),
                      fix="pick a name above, e.g. loss='sparse_categorical_crossentropy'")


def serialize(loss: Loss) -> dict:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(spec: dict) -> Loss:
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    if spec.get("class_name") not in classes:
        raise ConfigError("Unknown loss in artifact", received=repr(spec.get("class_name")))
    return classes[spec["class_name"]](**spec.get("config", {}))
