"""The training loop behind ``fit``/``evaluate``/``predict``.

Kept as lean as a hand-written PyTorch loop: data is fed by whole-batch indexing, metrics
accumulate on the device, the loss is read back once per log interval (``LOG_INTERVAL``
steps) rather than every step, a final softmax/sigmoid is folded into the loss, and disabled
features (mixed precision, gradient scaling, callbacks' batch hooks) cost nothing per step.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lepton.core import callbacks as callbacks_module
from lepton.core.data_adapter import as_list, batches, check_lengths, is_batch_iterable, to_tensor
from lepton.core.device import configure_threads, default_device
from lepton.core.progress import Progress, resolve_verbose
from lepton.core.training.compiled import warn_from_logits_on_probabilities
from lepton.errors import ConfigError, LabelError, ShapeError, TrainingError

LOG_INTERVAL = 32


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"`{name}` must be a positive int", received=f"{name}={value!r}")
    return int(value)


def model_inputs(model: Any, x: Any, what: str) -> list[torch.Tensor]:
    token_ids = model.expects_token_ids()
    values = as_list(x, model.input_names, what)
    kinds = token_ids if len(token_ids) == len(values) else [True] * len(values)
    return [to_tensor(v, f"{what} input {i}", integer_ok=k)
            for i, (v, k) in enumerate(zip(values, kinds))]


def ensure_built(model: Any, sample: list[torch.Tensor]) -> list[tuple[int, ...]]:
    """Build lazily-shaped layers on two samples (inference mode: no statistics move) and
    return the output shapes."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outs = model.run_outputs([s[:2] for s in sample])
    finally:
        model.train(was_training)
    return [tuple(o.shape) for o in outs]


def _device_of(model: Any) -> torch.device:
    for p in model.parameters():
        return p.device
    return default_device()


class Trainer:
    def __init__(self, model: Any) -> None:
        self.model = model
        self.spec = model.compiled
        self.device = self.spec.device
        configure_threads()
        dtype = self.spec.autocast_dtype()
        self.autocast = (lambda: torch.autocast(self.device.type, dtype=dtype)) if dtype else \
            contextlib.nullcontext
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=dtype == torch.float16)
        self.generator = torch.Generator()
        self.callbacks: list[callbacks_module.Callback] = []

    # -- preparation -------------------------------------------------------------------
    def arrays(self, x: Any, y: Any, what: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if x is None:
            raise ShapeError(f"{what}() needs data", received="x=None",
                             fix=f"call model.{what}(x, y)")
        xs = model_inputs(self.model, x, what)
        if y is None:
            raise LabelError(f"{what}() needs targets", received="y=None",
                             fix=f"call model.{what}(x, y), or pass batches of (x, y)")
        ys = [to_tensor(v, f"{what} targets", integer_ok=True)
              for v in as_list(y, self.model.output_names, "y")]
        check_lengths(xs + ys, what)
        return xs, ys

    def prepare(self, sample_x: list[torch.Tensor], sample_y: list[torch.Tensor] | None,
                what: str) -> None:
        """Build, place and check the model against a sample; resolve losses per output."""
        model = self.model
        model.to(self.device)
        sample_x = [s.to(self.device) for s in sample_x]
        if model.built:
            model.check_inputs(sample_x, what)
        output_shapes = ensure_built(model, sample_x)
        model.check_inputs(sample_x, what)
        names = model.output_names
        if len(names) != len(output_shapes):
            names = [f"output_{i + 1}" for i in range(len(output_shapes))]
        losses, self.loss_weights, self.metrics = self.spec.per_output(names)
        self.fold: set[int] = set()
        self.losses = []
        for i, loss in enumerate(losses):
            layer = model.output_layer(i)
            activation = getattr(getattr(layer, "activation", None), "name", None)
            warn_from_logits_on_probabilities(loss, activation, names[i])
            if loss.folds and not loss.from_logits and activation == loss.folds:
                self.fold.add(i)
                loss = loss.on_logits()
            self.losses.append(loss)
        self.fold_set = frozenset(self.fold)
        if sample_y is not None:
            if len(sample_y) != len(output_shapes):
                raise ShapeError(f"{what}: the model has {len(output_shapes)} output(s)",
                                 received=f"{len(sample_y)} target array(s)",
                                 fix="pass one target array per output")
            for i, (y, shape) in enumerate(zip(sample_y, output_shapes)):
                losses[i].check_labels(y, (len(y), *shape[1:]), f"{what} targets for "
                                       f"output '{names[i]}'")
        if model.torch_optimizer is None:
            model.torch_optimizer = self.spec.optimizer.build(model.parameters())
        self.optimizer = model.torch_optimizer
        self.forward = self._forward
        if self.spec.jit_compile:
            self.compiled_forward = torch.compile(self._forward, dynamic=False)

    def _forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.model.run_outputs(xs, self.fold_set)

    # -- one step ----------------------------------------------------------------------
    def total_loss(self, ys: list[torch.Tensor], outs: list[torch.Tensor],
                   weights: torch.Tensor | None) -> torch.Tensor:
        total: torch.Tensor | float = 0.0
        for loss_fn, factor, y, out in zip(self.losses, self.loss_weights, ys, outs):
            per_sample = loss_fn(y, out)
            value = (per_sample * weights).mean() if weights is not None else per_sample.mean()
            total = total + factor * value if factor != 1.0 else total + value
        return total  # type: ignore[return-value]

    def train_step(self, xs: list[torch.Tensor], ys: list[torch.Tensor],
                   weights: torch.Tensor | None, full: bool) -> tuple[torch.Tensor, list]:
        forward = self.compiled_forward if full and self.spec.jit_compile else self.forward
        with self.autocast():
            outs = forward(xs)
            loss = self.total_loss(ys, outs, weights)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.spec.optimizer.clipnorm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.spec.optimizer.clipnorm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), outs

    # -- fit -----------------------------------------------------------------------------
    def fit(self, x: Any, y: Any, *, batch_size: int, epochs: int, verbose: Any,
            callbacks: Any, validation_split: float, validation_data: Any, shuffle: bool,
            class_weight: Any, sample_weight: Any, initial_epoch: int, resume: bool,
            seed: int | None) -> callbacks_module.History:
        batch_size = positive_int(batch_size, "batch_size")
        if not isinstance(epochs, int) or epochs < 0:
            raise ConfigError("`epochs` must be a non-negative int", received=f"epochs={epochs!r}")
        if not 0 <= validation_split < 1:
            raise ConfigError("`validation_split` must be in [0, 1)",
                              received=f"validation_split={validation_split!r}")
        self.generator.manual_seed(seed if seed is not None else
                                   int(torch.randint(0, 2**62, (1,))))
        streaming = is_batch_iterable(x)
        val: tuple | None = None
        if streaming:
            source: Any = x
            first = next(iter(x))
            sample_x, sample_y, _ = self.split_batch(first, "fit")
            steps = len(x) if hasattr(x, "__len__") else None
        else:
            xs, ys = self.arrays(x, y, "fit")
            weights = self.sample_weights(ys, class_weight, sample_weight)
            if validation_split:
                n = len(xs[0])
                cut = n - max(1, int(round(n * validation_split)))
                if cut <= 0:
                    raise ConfigError("validation_split leaves no training samples",
                                      received=f"{n} samples, split {validation_split}")
                val = ([t[cut:] for t in xs], [t[cut:] for t in ys],
                       None if weights is None else weights[cut:])
                xs, ys = [t[:cut] for t in xs], [t[:cut] for t in ys]
                weights = None if weights is None else weights[:cut]
            sample_x, sample_y = xs, ys
            tensors = xs + ys + ([weights] if weights is not None else [])
            n_x, n_y = len(xs), len(ys)

            def source_fn() -> Iterator:
                for batch in batches(tensors, batch_size, shuffle, self.generator):
                    yield batch[:n_x], batch[n_x: n_x + n_y], (batch[-1] if weights is not None
                                                                else None)

            source = None
            steps = math.ceil(len(xs[0]) / batch_size)
        self.prepare(sample_x, sample_y, "fit")
        if validation_data is not None:
            val = self.validation_arrays(validation_data)

        history = callbacks_module.History()
        self.callbacks = [history, *(callbacks or [])]
        for cb in self.callbacks:
            cb.set_model(self.model)
            if isinstance(cb, callbacks_module.ModelCheckpoint):
                cb.trainer = self
        batch_hooks = [cb for cb in self.callbacks if type(cb).on_train_batch_end
                       is not callbacks_module.Callback.on_train_batch_end]
        if resume:
            initial_epoch = max(initial_epoch, self.load_resume_state())
        progress = Progress(resolve_verbose(verbose), epochs)
        for cb in self.callbacks:
            cb.on_train_begin()
        self.model.stop_training = False
        self.global_step = 0
        try:
            for epoch in range(initial_epoch, epochs):
                for cb in self.callbacks:
                    cb.on_epoch_begin(epoch)
                epoch_source = source if streaming else source_fn()
                logs = self.train_epoch(epoch_source, steps, batch_size, progress, epoch,
                                        batch_hooks)
                if val is not None:
                    val_logs = self.evaluate_batches(self.array_batches(val, max(batch_size, 256)))
                    logs.update({f"val_{k}": v for k, v in val_logs.items()})
                logs["learning_rate"] = float(self.optimizer.param_groups[0]["lr"])
                progress.epoch_end(epoch, logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(epoch, logs)
                if self.model.stop_training:
                    break
        finally:
            progress.close()
        for cb in self.callbacks:
            cb.on_train_end()
        self.model.history = history
        return history

    def train_epoch(self, source: Iterable, steps: int | None, batch_size: int,
                    progress: Progress, epoch: int, batch_hooks: list) -> dict:
        model = self.model
        model.train()
        for ms in self.metrics:
            for m in ms:
                m.reset(self.device)
        buffer = torch.zeros(LOG_INTERVAL, device=self.device)
        self.loss_sum, self.loss_count, pending = 0.0, 0, 0
        progress.epoch_begin(epoch, steps)
        live_bar = progress.bar is not None
        step = 0
        for batch in source:
            xs, ys, weights = self.split_batch(batch, "fit") if not isinstance(batch, tuple) \
                or len(batch) != 3 or not isinstance(batch[0], list) else batch
            xs, ys, weights = self.to_device(xs, ys, weights)
            loss, outs = self.train_step(xs, ys, weights, len(xs[0]) == batch_size)
            buffer[pending] = loss
            pending += 1
            for i, ms in enumerate(self.metrics):
                logits = i in self.fold
                for m in ms:
                    m.update(ys[i], outs[i].detach(), logits)
            step += 1
            self.global_step += 1
            for cb in batch_hooks:
                cb.on_train_batch_end(step, {"loss": loss})
            if pending == LOG_INTERVAL:
                self.flush_losses(buffer, pending, epoch, step)
                pending = 0
                progress.step(step, {"loss": self.loss_sum / self.loss_count})
            elif live_bar:
                progress.step(step)
        if pending:
            self.flush_losses(buffer, pending, epoch, step)
        if step == 0:
            raise ShapeError("fit: the data yielded no batches", fix="pass at least one sample")
        logs = {"loss": self.loss_sum / self.loss_count}
        for ms in self.metrics:
            for m in ms:
                logs[m.name] = m.result()
        return logs

    def flush_losses(self, buffer: torch.Tensor, pending: int, epoch: int, step: int) -> None:
        """One host sync per interval: add up the losses and stop on the first NaN/Inf."""
        chunk = buffer[:pending]
        total = float(chunk.sum())
        if not math.isfinite(total):
            bad = int((~torch.isfinite(chunk)).nonzero()[0])
            at = step - pending + bad + 1
            raise TrainingError(
                f"Training stopped: the loss became {float(chunk[bad])} at step {at} of epoch "
                f"{epoch + 1} (global step {self.global_step - pending + bad + 1})",
                fix="lower the learning rate, check the inputs for NaN/Inf, scale the "
                "features, or clip gradients with optimizer=Adam(clipnorm=1.0)")
        self.loss_sum += total
        self.loss_count += pending

    # -- data --------------------------------------------------------------------------
    def split_batch(self, batch: Any, what: str) -> tuple[list, list, Any]:
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise ShapeError(f"{what}: each batch must be (x, y) or (x, y, sample_weight)",
                             received=type(batch).__name__)
        xs = model_inputs(self.model, batch[0], what)
        ys = [to_tensor(v, f"{what} targets", integer_ok=True)
              for v in as_list(batch[1], self.model.output_names, "y")]
        weights = to_tensor(batch[2], "sample_weight") if len(batch) == 3 else None
        return xs, ys, weights

    def to_device(self, xs: list, ys: list, weights: Any) -> tuple[list, list, Any]:
        if self.device.type == "cpu":
            return xs, ys, weights
        return ([t.to(self.device, non_blocking=True) for t in xs],
                [t.to(self.device, non_blocking=True) for t in ys],
                None if weights is None else weights.to(self.device, non_blocking=True))

    def sample_weights(self, ys: list[torch.Tensor], class_weight: Any,
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

    def validation_arrays(self, data: Any) -> tuple:
        if is_batch_iterable(data):
            return ("stream", data)
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ConfigError("validation_data must be (x_val, y_val) or batches",
                              received=type(data).__name__)
        xs, ys = self.arrays(data[0], data[1], "validation")
        weights = to_tensor(data[2], "sample_weight") if len(data) == 3 else None
        return (xs, ys, weights)

    def array_batches(self, data: tuple, batch_size: int) -> Iterator:
        if isinstance(data[0], str):  # ("stream", iterable of batches)
            for batch in data[1]:
                yield self.split_batch(batch, "evaluate")
            return
        xs, ys, weights = data
        tensors = xs + ys + ([weights] if weights is not None else [])
        for batch in batches(tensors, batch_size, shuffle=False):
            yield (batch[: len(xs)], batch[len(xs): len(xs) + len(ys)],
                   batch[-1] if weights is not None else None)

    # -- evaluate ------------------------------------------------------------------------
    def evaluate_batches(self, source: Iterable) -> dict:
        model = self.model
        was_training = model.training
        model.eval()
        for ms in self.metrics:
            for m in ms:
                m.reset(self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        try:
            with torch.inference_mode(), self.autocast():
                for xs, ys, weights in source:
                    xs, ys, weights = self.to_device(xs, ys, weights)
                    outs = self.forward(xs)
                    total += self.total_loss(ys, outs, weights).double() * len(xs[0])
                    count += len(xs[0])
                    for i, ms in enumerate(self.metrics):
                        for m in ms:
                            m.update(ys[i], outs[i], i in self.fold)
        finally:
            model.train(was_training)
        logs = {"loss": float(total) / max(count, 1)}
        for ms in self.metrics:
            for m in ms:
                logs[m.name] = m.result()
        return logs

    def evaluate(self, x: Any, y: Any, *, batch_size: int | None, verbose: Any,
                 return_dict: bool, sample_weight: Any) -> Any:
        batch_size = positive_int(batch_size or 256, "batch_size")
        if is_batch_iterable(x):
            first = next(iter(x))
            sx, sy, _ = self.split_batch(first, "evaluate")
            self.prepare(sx, sy, "evaluate")
            source: Iterable = (self.split_batch(b, "evaluate") for b in x)
        else:
            xs, ys = self.arrays(x, y, "evaluate")
            self.prepare(xs, ys, "evaluate")
            weights = None if sample_weight is None else to_tensor(sample_weight, "sample_weight")
            source = self.array_batches((xs, ys, weights), batch_size)
        progress = Progress(resolve_verbose(verbose), 0)
        progress.started = time.perf_counter()
        logs = self.evaluate_batches(source)
        progress.epoch_end(0, logs)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # -- resume ----------------------------------------------------------------------------
    def save_resume_state(self, path: Path, epoch: int) -> None:
        """Weights, optimizer, epoch, random state and callback counters, written atomically."""
        from lepton.core.artifact import write_training_state

        state = {
            "epoch": epoch,
            "torch_rng": torch.get_rng_state(),
            "shuffle_rng": self.generator.get_state(),
            "callbacks": [cb.get_state() for cb in self.callbacks],
        }
        write_training_state(path, self.model, self.optimizer, state)

    def load_resume_state(self) -> int:
        """Restore the latest checkpoint's state; returns the epoch to continue from."""
        from lepton.core.artifact import read_training_state

        checkpoints = [cb for cb in self.callbacks
                       if isinstance(cb, callbacks_module.ModelCheckpoint)]
        if not checkpoints:
            raise ConfigError("fit(resume=True) needs a ModelCheckpoint callback to resume from",
                              fix="pass callbacks=[ModelCheckpoint('ckpt/model')]")
        path = checkpoints[0].resume_path
        if not path.exists():
            return 0  # nothing saved yet: a fresh run
        state = read_training_state(path, self.model, self.optimizer)
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["shuffle_rng"])
        for cb, cb_state in zip(self.callbacks, state.get("callbacks", [])):
            cb.set_state(cb_state)
        return int(state["epoch"]) + 1


def predict(model: Any, x: Any, batch_size: int | None = None, verbose: Any = 0) -> Any:
    """Batched inference to NumPy; needs no ``compile``."""
    configure_threads()
    batch_size = positive_int(batch_size or 256, "batch_size")
    if is_batch_iterable(x):
        chunks = [model_inputs(model, b[0] if isinstance(b, (tuple, list)) and len(b) in (2, 3)
                               and not isinstance(b[0], (int, float)) else b, "predict")
                  for b in x]
    else:
        xs = model_inputs(model, x, "predict")
        check_lengths(xs, "predict")
        chunks = [list(b) for b in batches(xs, batch_size, shuffle=False)]
    if not chunks:
        raise ShapeError("predict: no samples", fix="pass at least one row")
    device = model.compiled.device if model.compiled is not None else _device_of(model)
    model.to(device)
    if model.built:
        model.check_inputs(chunks[0], "predict")
    ensure_built(model, [c.to(device) for c in chunks[0]])
    model.check_inputs(chunks[0], "predict")
    dtype = model.compiled.autocast_dtype() if model.compiled is not None else None
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    outputs: list[list[np.ndarray]] = []
    try:
        with torch.inference_mode(), autocast:
            for chunk in chunks:
                outs = model.run_outputs([c.to(device, non_blocking=True) for c in chunk])
                outputs.append([o.float().cpu().numpy() for o in outs])
    finally:
        model.train(was_training)
    merged = [np.concatenate(parts) for parts in zip(*outputs)]
    return merged[0] if len(merged) == 1 else merged
