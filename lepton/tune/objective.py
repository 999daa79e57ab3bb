"""One trial: parameters -> a plan -> the ordinary training loop -> the validation metric.

The data are read and preprocessed once per worker (per preprocessing setting), not once per
trial. Pruning is a Lepton callback: it reports the validation metric to the trial after
each epoch and, when the pruner says so, ends training the way early stopping does
(``stop_training``), so the epoch finishes and every callback's ``on_train_end`` runs.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from lepton.core.callbacks import Callback
from lepton.errors import ConfigError
from lepton.tune.space import check_space, suggest, to_config

MAXIMIZE = ("acc", "auc", "f1", "precision", "recall", "r2")


def direction(metric: str) -> str:
    """'maximize' for accuracy-like metrics, else 'minimize' (losses, errors)."""
    return "maximize" if any(k in metric for k in MAXIMIZE) else "minimize"


def report_step(epoch: int) -> bool:
    """Epochs whose metric is reported: each of the first 10, then about every 20 % more.

    Each report is a storage round trip (a journal append, a database row), which on a small
    table costs a tenth of an epoch; a schedule shared by all trials keeps the pruners'
    step-by-step comparisons valid while 150 epochs cost 24 reports instead of 150.
    """
    return epoch < 10 or epoch in _GEOMETRIC


_GEOMETRIC = {round(10 * 1.2 ** k) for k in range(80)}


class PruningCallback(Callback):
    """Reports ``monitor`` to an Optuna trial (on ``report_step`` epochs); stops the fit when
    the study's pruner prunes it."""

    def __init__(self, trial: Any, monitor: str = "val_loss") -> None:
        import optuna

        self.trial, self.monitor = trial, monitor
        self.pruned_at: int | None = None
        self.seconds = 0.0  # spent reporting and asking the pruner (storage round trips)
        study = getattr(trial, "study", None)
        self.can_prune = not isinstance(getattr(study, "pruner", None),
                                        optuna.pruners.NopPruner)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        start = time.perf_counter()
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ConfigError(f"The metric '{self.monitor}' is not in the training logs",
                              expected=f"one of {sorted(logs or {})}",
                              received=self.monitor, fix="pass --metric with one of those")
        if not report_step(epoch):
            return
        self.trial.report(float(value), epoch)
        if self.can_prune and self.trial.should_prune():
            self.pruned_at = epoch
            self.model.stop_training = True
        self.seconds += time.perf_counter() - start


class Objective:
    """Trains one trial on data prepared once; keeps the parameters' training config."""

    def __init__(self, data: str | Path, target: str | None, space: dict, metric: str,
                 seed: int = 42, split: dict | None = None) -> None:
        self.data, self.target, self.metric = Path(data), target, metric
        self.space = check_space(space) if space else {}
        self.seed, self.split = seed, dict(split or {"seed": seed})
        self._prepared: dict[str, Any] = {}

    def prepared(self, preprocessing: dict | None, text_mode: str | None = None) -> Any:
        # tables ignore the text mode and "tfidf" is the default: one preparation for both
        key = json.dumps([preprocessing, text_mode or "tfidf"], sort_keys=True)
        if key not in self._prepared:
            from lepton.data import source_kind
            from lepton.train.datasets import prepare_images, prepare_table

            self._prepared[key] = (
                prepare_images(self.data, preprocessing, self.split)
                if source_kind(self.data) == "images"
                else prepare_table(self.data, self.target, preprocessing, self.split,
                                   text_mode))
        return self._prepared[key]

    def close(self) -> None:
        for prepared in self._prepared.values():
            prepared.close()
        self._prepared.clear()

    def __call__(self, trial: Any) -> float:
        import optuna

        from lepton.train.auto import PLAN_SETTINGS, make_plans
        from lepton.train.presets import PRESETS
        from lepton.train.run import _fit

        sampled = time.perf_counter()
        params = suggest(trial, self.space)  # the sampler (TPE) works here: Optuna's time
        sampled = time.perf_counter() - sampled
        preset, config = to_config(params)
        text_mode = PRESETS[preset].text_mode if preset in PRESETS else None
        prepared = self.prepared(config.get("preprocessing"), text_mode)
        options = {k: v for k, v in config["model"].items() if k != "preset"}
        train_cfg = config["train"]
        overrides = {**{k: train_cfg.get(k) for k in PLAN_SETTINGS},
                     "epochs": train_cfg.get("epochs"),
                     "batch_size": train_cfg.get("batch_size"), "options": options}
        plan = make_plans(preset, prepared.kind, len(prepared.y_train), overrides)[0]
        pruning = PruningCallback(trial, self.metric)
        start = time.perf_counter()
        _net, history = _fit(prepared, plan, self.seed, None, 0, lambda _e, _l: None,
                             extra_callbacks=(pruning,))
        values = [v for v in history.get(self.metric, []) if math.isfinite(v)]
        # one attribute (each is a storage write): epochs run, and the training time without
        # the callback's storage round trips (what the overhead benchmark compares against)
        trial.set_user_attr("fit", {"epochs": len(history.get("loss", [])),
                                    "seconds": time.perf_counter() - start - pruning.seconds,
                                    "sampling_seconds": sampled})
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at epoch {pruning.pruned_at}")
        if not values:
            raise ConfigError(f"Training logged no finite '{self.metric}'",
                              received=f"{self.metric}={history.get(self.metric)}",
                              fix="lower the learning rate in the space")
        return max(values) if direction(self.metric) == "maximize" else min(values)
