"""The training loop behind ``fit``/``evaluate``/``predict``.

Kept as lean as a hand-written PyTorch loop: data is fed by whole-batch indexing, metrics
accumulate on the device, the loss is read back once per log interval (``LOG_INTERVAL``
steps) rather than every step, a final softmax/sigmoid is folded into the loss, and disabled
features (mixed precision, gradient scaling, callbacks' batch hooks) cost nothing per step.

The loop owns no policy of its own: the model's ``Precision`` gives the autocast context and
the gradient scaler, its ``Strategy`` the device, this process's data and who writes, and
callbacks get a ``TrainingContext`` rather than the trainer.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from lepton.core import callbacks as callbacks_module
from lepton.core.data_adapter import is_batch_iterable, to_tensor
from lepton.core.progress import Progress, resolve_verbose
from lepton.core.training.checkpoint import resume_from_checkpoint, save_resume_state
from lepton.core.training.compiled import warn_from_logits_on_probabilities
from lepton.core.training.feeding import (
    array_batches,
    arrays,
    positive_int,
    sample_weights,
    split_batch,
    validation_arrays,
)
from lepton.core.training.strategy import Strategy
from lepton.errors import ConfigError, ShapeError, TrainingError

LOG_INTERVAL = 32


class Trainer:
    def __init__(self, model: Any) -> None:
        self.model = model
        self.spec = model.compiled
        self.strategy: Strategy = self.spec.strategy
        self.device = self.strategy.device
        self.strategy.setup_threads()
        self.autocast = self.spec.precision.autocast
        self.scaler = self.spec.precision.scaler
        self.generator = torch.Generator()
        self.callbacks: list[callbacks_module.Callback] = []

    # -- preparation -------------------------------------------------------------------
    def prepare(self, sample_x: list[torch.Tensor], sample_y: list[torch.Tensor] | None,
                what: str) -> None:
        """Build, place and check the model against a sample; resolve losses per output."""
        model = self.model
        self.strategy.place(model)
        sample_x = self.strategy.to_device(sample_x)[0]
        if model.built:
            model.check_inputs(sample_x, what)
        output_shapes = model.build_for_sample(sample_x)
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
        self.step = self.closure_step if self.spec.optimizer.needs_closure else self.train_step
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

    def closure_step(self, xs: list[torch.Tensor], ys: list[torch.Tensor],
                     weights: torch.Tensor | None, full: bool) -> tuple[torch.Tensor, list]:
        """A step of an optimizer that re-evaluates the loss (L-BFGS); returns the last
        evaluation's loss and outputs. (fp16 loss scaling is refused at compile.)"""
        forward = self.compiled_forward if full and self.spec.jit_compile else self.forward
        last: list = []

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                outs = forward(xs)
                loss = self.total_loss(ys, outs, weights)
            loss.backward()
            last[:] = [loss.detach(), outs]
            return loss

        self.optimizer.step(closure)
        return last[0], last[1]

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
            sample_x, sample_y, _ = split_batch(self.model, first, "fit")
            steps = len(x) if hasattr(x, "__len__") else None
        else:
            xs, ys = arrays(self.model, x, y, "fit")
            weights = sample_weights(ys, class_weight, sample_weight)
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
                for batch in self.strategy.shard_arrays(tensors, batch_size, shuffle,
                                                        self.generator):
                    yield batch[:n_x], batch[n_x: n_x + n_y], (batch[-1] if weights is not None
                                                                else None)

            source = None
            steps = math.ceil(len(xs[0]) / batch_size)
        self.prepare(sample_x, sample_y, "fit")
        if validation_data is not None:
            val = validation_arrays(self.model, validation_data)

        history = callbacks_module.History()
        self.callbacks = [history, *(callbacks or [])]
        save_state = functools.partial(save_resume_state, model=self.model,
                                       optimizer=self.optimizer, generator=self.generator,
                                       callbacks=self.callbacks)
        context = callbacks_module.TrainingContext(is_writer=self.strategy.is_writer,
                                                   save_state=save_state)
        for cb in self.callbacks:
            cb.set_model(self.model)
            cb.set_context(context)
        batch_hooks = [cb for cb in self.callbacks if type(cb).on_train_batch_end
                       is not callbacks_module.Callback.on_train_batch_end]
        if resume:
            initial_epoch = max(initial_epoch, resume_from_checkpoint(
                self.model, self.optimizer, self.generator, self.callbacks))
        progress = Progress(resolve_verbose(verbose), epochs)
        for cb in self.callbacks:
            cb.on_train_begin()
        self.model.stop_training = False
        self.global_step = 0
        try:
            for epoch in range(initial_epoch, epochs):
                for cb in self.callbacks:
                    cb.on_epoch_begin(epoch)
                epoch_source = self.strategy.shard_stream(source) if streaming else source_fn()
                logs = self.train_epoch(epoch_source, steps, batch_size, progress, epoch,
                                        batch_hooks)
                if val is not None:
                    val_logs = self.evaluate_batches(
                        array_batches(self.model, val, max(batch_size, 256)))
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
            xs, ys, weights = batch if isinstance(batch, tuple) and len(batch) == 3 and \
                isinstance(batch[0], list) else split_batch(self.model, batch, "fit")
            xs, ys, weights = self.strategy.to_device(xs, ys, weights)
            loss, outs = self.step(xs, ys, weights, len(xs[0]) == batch_size)
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
                    xs, ys, weights = self.strategy.to_device(xs, ys, weights)
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
            sx, sy, _ = split_batch(self.model, first, "evaluate")
            self.prepare(sx, sy, "evaluate")
            source: Iterable = (split_batch(self.model, b, "evaluate") for b in x)
        else:
            xs, ys = arrays(self.model, x, y, "evaluate")
            self.prepare(xs, ys, "evaluate")
            weights = None if sample_weight is None else to_tensor(sample_weight, "sample_weight")
            source = array_batches(self.model, (xs, ys, weights), batch_size)
        progress = Progress(resolve_verbose(verbose), 0)
        progress.started = time.perf_counter()
        logs = self.evaluate_batches(source)
        progress.epoch_end(0, logs)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values
