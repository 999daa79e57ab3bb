"""Callbacks: no-op hooks the training loop calls; they never drive the loop themselves.

Batch-level hooks are only called when a callback overrides them, so a plain ``fit`` pays
nothing per step for callbacks. Besides the model (``set_model``), ``fit`` hands each callback
a ``TrainingContext`` (``set_context``): whether this process writes files, and how to save
the resume state; a callback never sees the trainer itself.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton.errors import ConfigError


@dataclass(frozen=True)
class TrainingContext:
    """What ``fit`` offers its callbacks besides the model.

    ``is_writer``: whether this process writes checkpoints and logs (one process of a
    distributed run does; a single process always). ``save_state(path, epoch)``: write the
    resume state (weights, optimizer, epoch, random state, every callback's counters)
    atomically to the directory ``path``.
    """

    is_writer: bool
    save_state: Callable[[Path, int], None]


class Callback:
    model: Any = None
    context: TrainingContext | None = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_context(self, context: TrainingContext) -> None:
        """Before ``on_train_begin``: what the running ``fit`` offers (see TrainingContext)."""
        self.context = context

    @property
    def is_writer(self) -> bool:
        """Whether this process writes files (True outside ``fit`` and in a single process)."""
        return self.context is None or self.context.is_writer

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Before the first epoch."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """After the last epoch (also when stopped early)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Before each epoch."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """After each epoch, with its training and validation metrics."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """After each training step (logs hold the device-side loss tensor)."""

    # Resumable callbacks keep their counters across a killed run.
    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        """Restore what ``get_state`` returned."""


def attach(callbacks: list[Callback], model: Any, context: TrainingContext) -> list[Callback]:
    """Give each callback the model and the context; returns those with a per-batch hook
    (the loop calls only them after each step)."""
    for cb in callbacks:
        cb.set_model(model)
        cb.set_context(context)
    return [cb for cb in callbacks
            if type(cb).on_train_batch_end is not Callback.on_train_batch_end]


class History(Callback):
    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def get_state(self) -> dict:
        return {"history": self.history, "epoch": self.epoch}

    def set_state(self, state: dict) -> None:
        self.history = {k: list(v) for k, v in state.get("history", {}).items()}
        self.epoch = list(state.get("epoch", []))


class _Monitor(Callback):
    """Shared by callbacks that watch one metric for improvement."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        if mode not in ("auto", "min", "max"):
            raise ConfigError("mode must be 'auto', 'min' or 'max'", received=repr(mode))
        self.monitor = monitor
        maximize = mode == "max" or (mode == "auto" and any(
            k in monitor for k in ("acc", "auc", "precision", "recall", "f1")))
        self.sign = 1.0 if maximize else -1.0
        self.min_delta = abs(min_delta)
        self.best = -math.inf
        self.wait = 0

    def current(self, logs: dict | None) -> float | None:
        value = (logs or {}).get(self.monitor)
        return None if value is None else self.sign * float(value)

    def improved(self, value: float) -> bool:
        return value > self.best + self.min_delta

    def get_state(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def set_state(self, state: dict) -> None:
        self.best, self.wait = state.get("best", -math.inf), state.get("wait", 0)


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally put back
    the best weights seen."""

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.best_weights: dict | None = None
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best_weights = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self.current(logs)
        if value is None or epoch < self.start_from_epoch:
            return
        if self.improved(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().clone()
                                     for k, v in self.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


class ReduceLROnPlateau(_Monitor):
    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, mode: str = "auto", min_lr: float = 0.0,
                 cooldown: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        if not 0 < factor < 1:
            raise ConfigError("ReduceLROnPlateau expected `factor` in (0, 1)",
                              received=f"factor={factor!r}")
        self.factor, self.patience, self.min_lr, self.cooldown = factor, patience, min_lr, cooldown
        self.cooldown_left = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self.current(logs)
        if value is None:
            return
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self.improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait > self.patience:
            for group in self.model.torch_optimizer.param_groups:
                group["lr"] = max(group["lr"] * self.factor, self.min_lr)
            self.wait, self.cooldown_left = 0, self.cooldown

    def get_state(self) -> dict:
        return {**super().get_state(), "cooldown_left": self.cooldown_left}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.cooldown_left = state.get("cooldown_left", 0)


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch start to ``schedule(epoch, lr)``."""

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        groups = self.model.torch_optimizer.param_groups
        lr = float(self.schedule(epoch, groups[0]["lr"]))
        if not lr > 0:
            raise ConfigError("The learning-rate schedule returned a non-positive value",
                              received=f"{lr} at epoch {epoch}")
        for group in groups:
            group["lr"] = lr


class CSVLogger(Callback):
    """Appends one row per epoch (flushed, so a killed run keeps its rows)."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",",
                 append: bool = False) -> None:
        self.filename, self.separator, self.append = Path(filename), separator, append

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.is_writer:
            return
        logs = logs or {}
        new = not self.filename.exists() or self.filename.stat().st_size == 0
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        with self.filename.open("a", newline="") as handle:
            writer = csv.writer(handle, delimiter=self.separator)
            if new:
                writer.writerow(["epoch", *logs])
            writer.writerow([epoch, *logs.values()])

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.is_writer and not self.append and self.filename.exists():
            self.filename.unlink()


class TensorBoard(Callback):
    """Writes epoch metrics as TensorBoard scalars (needs the ``tensorboard`` package)."""

    def __init__(self, log_dir: str | os.PathLike = "logs") -> None:
        self.log_dir = str(log_dir)
        self.writer: Any = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.is_writer:
            return
        from lepton.errors import require

        require("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(self.log_dir)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.writer is None:
            return
        for key, value in (logs or {}).items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.writer is not None:
            self.writer.close()


class ModelCheckpoint(_Monitor):
    """Saves the model artifact (atomically) after epochs, and always keeps a resume state
    next to it (``<filepath>.resume``) so ``fit(..., resume=True)`` continues a killed run."""

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss",
                 save_best_only: bool = False, mode: str = "auto",
                 save_weights_only: bool = False) -> None:
        super().__init__(monitor, mode, 0.0)
        self.filepath = str(filepath)
        self.save_best_only = save_best_only

    @property
    def resume_path(self) -> Path:
        template = Path(self.filepath)
        stem = template.name.split("{")[0].rstrip("-_.") or "checkpoint"
        return template.parent / f"{stem}.resume"

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.is_writer:
            return
        value = self.current(logs)
        if not self.save_best_only or (value is not None and self.improved(value)):
            if value is not None and self.improved(value):
                self.best = value
            path = self.filepath.format(epoch=epoch + 1, **(logs or {}))
            self.model.save(path, reference=False)  # profiled once, when saved for use
        if self.context is not None:
            self.context.save_state(self.resume_path, epoch)
