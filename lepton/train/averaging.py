"""An exponential moving average (EMA) of the weights, validated and kept in place of the
last step's weights.

On small, noisy training sets the weights after any one step swing with the last few
batches; their running average sits nearer the middle of the good region and scores better
and more steadily on held-out data. The average is swapped into the model after each epoch's
last step, so validation, early stopping's best-weights snapshot and the saved model all see
the averaged weights, and swapped out again before the next epoch trains on.
"""

from __future__ import annotations

import torch

from lepton.core.callbacks import Callback


class WeightAverage(Callback):
    """EMA of every floating-point weight and buffer, updated after each training step.

    ``decay`` is the per-step keep rate; for the first ``1 / (1 - decay)`` steps the plain mean
    of the steps so far is kept instead, so the random initial weights do not linger.
    """

    def __init__(self, steps_per_epoch: int, decay: float = 0.99) -> None:
        self.steps_per_epoch = int(steps_per_epoch)
        self.decay = float(decay)
        self.average: dict[str, torch.Tensor] = {}
        self.live: dict[str, torch.Tensor] | None = None
        self.updates = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.average = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.live, self.updates = None, 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.live is not None:
            self.model.load_state_dict(self.live)
            self.live = None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.updates += 1
        keep = min(self.decay, (self.updates - 1) / self.updates)
        with torch.no_grad():
            for key, value in self.model.state_dict().items():
                if value.is_floating_point():
                    self.average[key].lerp_(value, 1 - keep)
                else:
                    self.average[key].copy_(value)
        if batch == self.steps_per_epoch:
            self.live = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(self.average)
