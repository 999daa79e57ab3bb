"""What ``fit``/``evaluate``/``predict`` are given, as lists of tensors: one per model input,
one per output's targets, and the sample weights (class weights folded in)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from lepton.core.data_adapter import as_list, batches, check_lengths, is_batch_iterable, to_tensor
from lepton.errors import ConfigError, LabelError, ShapeError


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"`{name}` must be a positive int", received=f"{name}={value!r}")
    return int(value)


def check_fit_settings(epochs: Any, validation_split: Any) -> None:
    if not isinstance(epochs, int) or epochs < 0:
        raise ConfigError("`epochs` must be a non-negative int", received=f"epochs={epochs!r}")
    if not 0 <= validation_split < 1:
        raise ConfigError("`validation_split` must be in [0, 1)",
                          received=f"validation_split={validation_split!r}")


def model_inputs(model: Any, x: Any, what: str) -> list[torch.Tensor]:
    token_ids = model.expects_token_ids()
    values = as_list(x, model.input_names, what)
    kinds = token_ids if len(token_ids) == len(values) else [True] * len(values)
    return [to_tensor(v, f"{what} input {i}", integer_ok=k)
            for i, (v, k) in enumerate(zip(values, kinds))]


def arrays(model: Any, x: Any, y: Any, what: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if x is None:
        raise ShapeError(f"{what}() needs data", received="x=None",
                         fix=f"call model.{what}(x, y)")
    xs = model_inputs(model, x, what)
    if y is None:
        raise LabelError(f"{what}() needs targets", received="y=None",
                         fix=f"call model.{what}(x, y), or pass batches of (x, y)")
    ys = [to_tensor(v, f"{what} targets", integer_ok=True)
          for v in as_list(y, model.output_names, "y")]
    check_lengths(xs + ys, what)
    return xs, ys

def check_targets(losses: list, ys: list, output_shapes: list, names: list[str],
                  what: str) -> None:
    """One target array per output, each with labels its loss can read."""
    if len(ys) != len(output_shapes):
        raise ShapeError(f"{what}: the model has {len(output_shapes)} output(s)",
                         received=f"{len(ys)} target array(s)",
                         fix="pass one target array per output")
    for i, (y, shape) in enumerate(zip(ys, output_shapes)):
        losses[i].check_labels(y, (len(y), *shape[1:]), f"{what} targets for "
                               f"output '{names[i]}'")


def split_batch(model: Any, batch: Any, what: str) -> tuple[list, list, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ShapeError(f"{what}: each batch must be (x, y) or (x, y, sample_weight)",
                         received=type(batch).__name__)
    xs = model_inputs(model, batch[0], what)
    ys = [to_tensor(v, f"{what} targets", integer_ok=True)
          for v in as_list(batch[1], model.output_names, "y")]
    weights = to_tensor(batch[2], "sample_weight") if len(batch) == 3 else None
    return xs, ys, weights

def sample_weights(ys: list[torch.Tensor], class_weight: Any,
                   sample_weight: Any) -> torch.Tensor | None:
    weights = None if sample_weight is None else to_tensor(sample_weight, "sample_weight")
    if class_weight:
        if not isinstance(class_weight, dict):
            raise ConfigError("class_weight must map class index -> weight",
                              received=type(class_weight).__name__,
                              fix="e.g. class_weight={0: 1.0, 1: 3.0}")
        y = ys[0]
        classes = (y.argmax(-1) if y.dim() > 1 and y.shape[-1] > 1 else
                   y.reshape(-1).round()).long()
        table = torch.ones(int(max(max(class_weight), int(classes.max()))) + 1)
        for cls, w in class_weight.items():
            table[int(cls)] = float(w)
        per_sample = table[classes]
        weights = per_sample if weights is None else weights * per_sample
    return weights

def validation_arrays(model: Any, data: Any) -> tuple:
    if is_batch_iterable(data):
        return ("stream", data)
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise ConfigError("validation_data must be (x_val, y_val) or batches",
                          received=type(data).__name__)
    xs, ys = arrays(model, data[0], data[1], "validation")
    weights = to_tensor(data[2], "sample_weight") if len(data) == 3 else None
    return (xs, ys, weights)

def split_validation(xs: list, ys: list, weights: Any, split: float) -> tuple:
    """(xs, ys, weights) to train on and the last ``split`` share of rows to validate on
    (None when ``split`` is 0)."""
    if not split:
        return xs, ys, weights, None
    n = len(xs[0])
    cut = n - max(1, int(round(n * split)))
    if cut <= 0:
        raise ConfigError("validation_split leaves no training samples",
                          received=f"{n} samples, split {split}")
    val = ([t[cut:] for t in xs], [t[cut:] for t in ys],
           None if weights is None else weights[cut:])
    return ([t[:cut] for t in xs], [t[:cut] for t in ys],
            None if weights is None else weights[:cut], val)


def split_stream(model: Any, source: Any) -> Iterator[tuple]:
    """A stream's batches as (inputs, targets, weights or None)."""
    for batch in source:
        yield split_batch(model, batch, "fit")


def array_batches(model: Any, data: tuple, batch_size: int, strategy: Any = None) -> Iterator:
    """Evaluation batches of this process's rows (all rows without a ``strategy``)."""
    if isinstance(data[0], str):  # ("stream", iterable of batches)
        for batch in data[1]:
            split = split_batch(model, batch, "evaluate")
            yield split if strategy is None else strategy.eval_batch(split)
        return
    xs, ys, weights = data
    tensors = xs + ys + ([weights] if weights is not None else [])
    if strategy is not None:
        tensors = strategy.eval_rows(tensors)
    for batch in batches(tensors, batch_size, shuffle=False):
        yield (batch[: len(xs)], batch[len(xs): len(xs) + len(ys)],
               batch[-1] if weights is not None else None)
