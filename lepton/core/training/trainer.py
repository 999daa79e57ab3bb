"""The training loop behind ``fit``/``evaluate``/``predict``.

Kept as lean as a hand-written PyTorch loop: data is fed by whole-batch indexing, metrics
accumulate on the device, the loss is read back once per log interval (``LOG_INTERVAL``
steps) rather than every step, a final softmax/sigmoid is folded into the loss, and disabled
features (mixed precision, gradient scaling, callbacks' batch hooks) cost nothing per step.

The loop owns no policy: ``Precision`` gives the autocast context and gradient scaler, the
``Strategy`` the device, this process's data, the training forward (DDP's when distributed),
sums across processes and who writes; callbacks get a ``TrainingContext``. ``fit(accumulate=k)``
steps once per k batches on their averaged gradient, with no all-reduce in between.
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
from lepton.core.training.compiled import fold_final_activations
from lepton.core.training.feeding import (
    array_batches,
    arrays,
    check_fit_settings,
    check_targets,
    positive_int,
    sample_weights,
    split_batch,
    split_stream,
    split_validation,
    validation_arrays,
)
from lepton.core.training.sample import Reservoir, from_arrays
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
        self.losses, self.fold = fold_final_activations(model, losses, names)
        self.fold_set = frozenset(self.fold)
        if sample_y is not None:
            check_targets(losses, sample_y, output_shapes, names, what)
        if model.torch_optimizer is None:
            model.torch_optimizer = self.spec.optimizer.build(model.parameters())
        self.optimizer = model.torch_optimizer
        self.step = self.closure_step if self.spec.optimizer.needs_closure else self.train_step
        self.forward = self.train_forward = self._forward

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
        forward = self.compiled_forward if full and self.spec.jit_compile else self.train_forward
        self.micro += 1
        sync = self.micro % self.accumulate == 0
        with self.strategy.no_sync(sync):
            with self.autocast():
                outs = forward(xs)
                loss = self.total_loss(ys, outs, weights)
            self.scaler.scale(loss / self.accumulate if self.accumulate > 1 else loss).backward()
        if sync:
            self.apply_gradients()
        return loss.detach(), outs

    def apply_gradients(self) -> None:
        if self.spec.optimizer.clipnorm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.spec.optimizer.clipnorm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def flush_accumulated(self) -> None:
        """An epoch's last, short accumulation cycle of m < k batches: sync, rescale to
        their mean and step, so no gradient leaks into the next epoch."""
        pending = self.micro % self.accumulate
        if self.step == self.train_step and pending:
            self.strategy.sync_gradients(self.model)
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(self.accumulate / pending)
            self.apply_gradients()
        self.micro = 0

    def closure_step(self, xs: list[torch.Tensor], ys: list[torch.Tensor],
                     weights: torch.Tensor | None, full: bool) -> tuple[torch.Tensor, list]:
        """A step of an optimizer that re-evaluates the loss (L-BFGS); returns the last
        evaluation's loss and outputs. (fp16 loss scaling is refused at compile.)"""
        forward = self.compiled_forward if full and self.spec.jit_compile else self.train_forward
        last: list = []

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                outs = forward(xs)
                loss = self.total_loss(ys, outs, weights)
            loss.backward()
            last[:] = [loss.detach(), outs]
            return self.strategy.average(loss)  # every process takes the same line search

        self.optimizer.step(closure)
        return last[0], last[1]

    # -- fit -----------------------------------------------------------------------------
    def fit(self, x: Any, y: Any, *, batch_size: int, epochs: int, verbose: Any,
            callbacks: Any, validation_split: float, validation_data: Any, shuffle: bool,
            class_weight: Any, sample_weight: Any, initial_epoch: int, resume: bool,
            seed: int | None, accumulate: int = 1) -> callbacks_module.History:
        batch_size = positive_int(batch_size, "batch_size")
        self.accumulate, self.micro = positive_int(accumulate, "accumulate"), 0
        local_batch = self.strategy.local_batch_size(batch_size)
        check_fit_settings(epochs, validation_split)
        self.generator.manual_seed(self.strategy.common_seed(seed))
        streaming = is_batch_iterable(x)
        val: tuple | None = None
        if streaming:
            source: Any = x
            first = next(iter(x))
            sample_x, sample_y, _ = split_batch(self.model, first, "fit")
            steps = len(x) if hasattr(x, "__len__") else None
            reservoir = Reservoir(labels=getattr(x, "class_names", None))
        else:
            xs, ys = arrays(self.model, x, y, "fit")
            weights = sample_weights(ys, class_weight, sample_weight)
            xs, ys, weights, val = split_validation(xs, ys, weights, validation_split)
            sample_x, sample_y = xs, ys
            tensors = xs + ys + ([weights] if weights is not None else [])
            shape = (len(xs), len(ys), weights is not None, batch_size, shuffle, self.generator)

            def source_fn() -> Iterator:
                return self.strategy.train_batches(tensors, *shape)

            source = None
            steps = math.ceil(len(xs[0]) / batch_size)
            self.model.training_sample = from_arrays(xs)  # for the reference Model.save writes
        self.prepare(sample_x, sample_y, "fit")
        if self.accumulate > 1 and self.step != self.train_step:
            raise ConfigError("accumulate works with mini-batch optimizers, not with "
                              f"{type(self.spec.optimizer).__name__}",
                              received=f"accumulate={accumulate}", fix="drop accumulate")
        self.train_forward = self.strategy.wrap_forward(self.model, self._forward)
        if self.spec.jit_compile:
            self.compiled_forward = torch.compile(self.train_forward, dynamic=False)
        if validation_data is not None:
            val = validation_arrays(self.model, validation_data)

        history = callbacks_module.History()
        self.callbacks = [history, *(callbacks or [])]
        save_state = functools.partial(save_resume_state, model=self.model,
                                       optimizer=self.optimizer, generator=self.generator,
                                       callbacks=self.callbacks)
        context = callbacks_module.TrainingContext(is_writer=self.strategy.is_writer,
                                                   save_state=save_state)
        batch_hooks = callbacks_module.attach(self.callbacks, self.model, context)
        if resume:
            initial_epoch = max(initial_epoch, resume_from_checkpoint(
                self.model, self.optimizer, self.generator, self.callbacks))
        progress = Progress(resolve_verbose(verbose) if self.strategy.is_writer else 0, epochs)
        self.optimizer.zero_grad(set_to_none=True)
        for cb in self.callbacks:
            cb.on_train_begin()
        self.model.stop_training, self.global_step = False, 0
        try:
            for epoch in range(initial_epoch, epochs):
                for cb in self.callbacks:
                    cb.on_epoch_begin(epoch)
                epoch_source = (self.strategy.shard_stream(split_stream(self.model, source))
                                if streaming else source_fn())
                if streaming and epoch == initial_epoch:  # a sample of the first epoch's rows
                    epoch_source = reservoir.watch(epoch_source, self.model)
                logs = self.train_epoch(epoch_source, steps, local_batch, progress, epoch,
                                        batch_hooks)
                if val is not None:
                    val_logs = self.evaluate_batches(array_batches(
                        self.model, val, max(batch_size, 256), self.strategy))
                    logs.update({f"val_{k}": v for k, v in val_logs.items()})
                logs["learning_rate"] = float(self.optimizer.param_groups[0]["lr"])
                progress.epoch_end(epoch, logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(epoch, logs)
                self.strategy.barrier()  # rank 0's checkpoint is whole before anyone reads it
                if self.model.stop_training:
                    break
        finally:
            progress.close()
        for cb in self.callbacks:
            cb.on_train_end()
        self.strategy.barrier()
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
        self.flush_accumulated()
        if step == 0:
            raise ShapeError("fit: the data yielded no batches", fix="pass at least one sample")
        self.loss_sum, self.loss_count = self.strategy.reduce(self.loss_sum, self.loss_count,
                                                              self.metrics)
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
        total, count = self.strategy.reduce(total, count, self.metrics)
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
            source: Iterable = array_batches(self.model, ("stream", x), batch_size,
                                             self.strategy)
        else:
            xs, ys = arrays(self.model, x, y, "evaluate")
            self.prepare(xs, ys, "evaluate")
            weights = None if sample_weight is None else to_tensor(sample_weight, "sample_weight")
            source = array_batches(self.model, (xs, ys, weights), batch_size, self.strategy)
        progress = Progress(resolve_verbose(verbose) if self.strategy.is_writer else 0, 0)
        progress.started = time.perf_counter()
        logs = self.evaluate_batches(source)
        progress.epoch_end(0, logs)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values
