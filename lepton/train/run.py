"""``lepton train`` as a function: data path in, artifact + report + recorded run out.

The artifact directory appears only when everything worked: the model, its metadata and the
report are written into a temporary sibling that replaces ``out`` at the end, so a failed run
leaves nothing half-written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lepton.errors import ConfigError

ROWS = {"image": "train / val / test images", "tabular": "train / val / test rows",
        "text": "train / val / test rows"}


@dataclass
class TrainResult:
    path: Path
    report: Path
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    plan: Any
    seconds: float
    registered: dict | None = None


def load_config(path: str | Path | None) -> dict[str, Any]:
    """The YAML config as a dict ({} without a file); unknown top-level keys are errors."""
    if not path:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read config '{path}'", received=str(exc).splitlines()[0],
                          fix="check the path and the YAML syntax") from None
    allowed = {"data", "target", "model", "preprocessing", "split", "train", "out", "name"}
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"Unknown key(s) {sorted(unknown)} in '{path}'",
                          expected=f"some of {sorted(allowed)}")
    return data


def _compile(model: Any, task: str, lr: float, weight_decay: float = 0.0, *,
             optimizer: Any = None, precision: str = "auto", strategy: Any = None) -> None:
    """The task's loss and metric, with ``optimizer`` (default: Adam, AdamW with
    ``weight_decay``, at ``lr``)."""
    from lepton.core import optimizers

    if optimizer is None:
        optimizer = (optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay)
                     if weight_decay else optimizers.Adam(learning_rate=lr))
    loss, metrics = (("mse", ["mae"]) if task == "regression"
                     else ("sparse_categorical_crossentropy", ["accuracy"]))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, precision=precision,
                  strategy=strategy)


def _lbfgs(prepared: Any, plan: Any) -> Any:
    """Full-batch L-BFGS with scikit-learn's L2 penalty (its C is 1 / ``l2``, default 1),
    class weights included (they weigh the loss rows, as ``class_weight`` does there)."""
    from lepton.core import optimizers

    # the trainer averages weighted losses over rows: scikit-learn's objective divided by C n
    decay = float(plan.options.get("l2", 1.0)) / len(prepared.y_train)
    if prepared.task == "binary":  # two softmax columns hold half the norm of their one
        decay *= 2  # logit difference: doubled, the penalty equals scikit-learn's binary one
    return optimizers.LBFGS(max_iter=int(plan.options.get("max_iter", 500)),
                            tolerance_grad=1e-6, weight_decay=decay)


def _full_batch(prepared: Any, plan: Any) -> bool:
    """A linear model on in-memory rows has one optimum: L-BFGS reaches it in well under a
    second on tables where Adam would need hundreds of noisy epochs."""
    return plan.preset == "linear" and prepared.dense_train is not None and not plan.augment


def _callbacks(plan: Any, time_limit: float | None, on_epoch: Callable | None,
               steps_per_epoch: int, full_batch: bool) -> list:
    """Run-store reports and the time limit; for mini-batch training also weight averaging,
    the learning-rate schedule and early stopping (a full-batch L-BFGS step has none)."""
    from lepton.core import callbacks

    class _Hooks(callbacks.Callback):
        """Stops at the time limit and reports each epoch (to the run store)."""

        def __init__(self) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if on_epoch is not None:
                on_epoch(epoch, dict(logs or {}))
            if time_limit and time.perf_counter() - self.started > time_limit:
                self.model.stop_training = True

    if full_batch:
        return [_Hooks()]
    averaging = []
    if plan.average:  # first, so validation and early stopping see the averaged weights
        from lepton.train.averaging import WeightAverage

        averaging = [WeightAverage(steps_per_epoch, plan.average)]
    if plan.schedule == "cosine":
        def cosine(epoch: int, _lr: float) -> float:
            warm = min(1.0, (epoch + 1) / (plan.warmup_epochs + 1))
            return max(1e-6, warm * plan.learning_rate * 0.5 * (
                1 + math.cos(math.pi * epoch / plan.epochs)))

        schedule = callbacks.LearningRateScheduler(cosine)
    else:
        schedule = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                               patience=max(2, plan.patience // 3),
                                               min_lr=1e-5)
    return [*averaging,
            callbacks.EarlyStopping(monitor="val_loss", patience=plan.patience,
                                    restore_best_weights=True,
                                    start_from_epoch=plan.min_epochs),
            schedule, _Hooks()]


def _fit(prepared: Any, plan: Any, seed: int, time_limit: float | None, verbose: Any,
         on_epoch: Callable, extra_callbacks: tuple = ()) -> tuple[Any, dict[str, list[float]]]:
    """Build the plan's model and train it through ``fit`` (mini-batches with early stopping,
    or one full-batch L-BFGS step for a linear model); returns (model, history).
    ``extra_callbacks`` run after the plan's own (``lepton tune``'s pruning callback)."""
    import torch

    from lepton.core.training.distributed import default_strategy
    from lepton.data.split import class_weights
    from lepton.train.presets import get_preset
    from lepton.train.stream import BatchStream, sample_weights

    torch.manual_seed(seed)
    preset = get_preset(plan.preset, prepared.kind)
    opts = dict(plan.options)
    if prepared.input_dtype == "int64":
        opts["vocab_size"] = len(prepared.pipeline.encoders[0].vocabulary) + 2
    n_out = 1 if prepared.task == "regression" else len(prepared.labels)
    net = preset.build(prepared.input_shape, n_out, prepared.task, opts)
    cw = None if prepared.task == "regression" else class_weights(prepared.y_train, n_out)
    full_batch = _full_batch(prepared, plan)
    # small dense models train on one thread: it beats two (no sync per tiny matmul, no
    # collapse when another process holds the other core); convolutions keep every core
    strategy = default_strategy(threads=None if prepared.kind == "image" else 1)  # torchrun: DDP
    if full_batch:  # float32: the line search needs exact losses
        _compile(net, prepared.task, plan.learning_rate, optimizer=_lbfgs(prepared, plan),
                 precision="32", strategy=strategy)
    else:
        _compile(net, prepared.task, plan.learning_rate, plan.weight_decay, strategy=strategy)
    batch_size, epochs = plan.batch_size, plan.epochs
    if full_batch:
        batch_size, epochs = len(prepared.y_train), 1  # one L-BFGS step runs to convergence
        batch_size = -(-batch_size // strategy.world_size) * strategy.world_size  # global
    if prepared.dense_train is None or plan.augment:
        read = prepared.train_read
        if plan.augment and prepared.kind == "image":
            from lepton.data.augment import augment_batch

            rng = np.random.default_rng(seed)
            options = prepared.pipeline.augment or {}

            def read(idx, _base=prepared.train_read):
                return augment_batch(_base(idx), options, rng)
        row_bytes = 4 * int(np.prod(prepared.input_shape))
        fit_args = {"x": BatchStream(read, prepared.y_train, batch_size, seed=seed,
                                     weights=sample_weights(prepared.y_train, cw),
                                     chunk=max(batch_size, (64 << 20) // row_bytes))}
    else:
        fit_args = {"x": prepared.dense_train, "y": prepared.y_train,
                    "batch_size": batch_size, "class_weight": cw, "shuffle": not full_batch}
    history = net.fit(**fit_args, epochs=epochs,
                      validation_data=(prepared.x_val, prepared.y_val), verbose=verbose,
                      callbacks=[*_callbacks(plan, time_limit, on_epoch,
                                             -(-len(prepared.y_train) // batch_size),
                                             full_batch), *extra_callbacks],
                      seed=seed)
    return net, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def train(data: str | Path, target: str | None = None, *, model: str = "auto",
          config: str | Path | dict | None = None, out: str | Path = "model",
          name: str | None = None, epochs: int | None = None, batch_size: int | None = None,
          seed: int | None = None, time_limit: float | None = None, register: bool = True,
          verbose: Any = 0, log: Callable[[str], None] | None = None,
          weights: str | None = None, image_size: int | None = None) -> TrainResult:
    """Train a model from a file or image folder; see ``lepton train --help``. ``weights``
    and ``image_size``: a pretrained backbone's file, the images' size (``train.transfer``)."""
    from lepton.core.training.distributed import process_rank
    from lepton.data import source_kind
    from lepton.evaluate.metrics import headline
    from lepton.evaluate.report import evaluate_outputs, save_report
    from lepton.train import crossval, record
    from lepton.train.auto import PLAN_SETTINGS, make_plans
    from lepton.train.datasets import data_hash, prepare_images, prepare_table

    log = log or (lambda _msg: None)
    cfg = config if isinstance(config, dict) else load_config(config)
    data = Path(data or cfg.get("data") or "")
    target = target or cfg.get("target")
    model_name = model if model != "auto" else cfg.get("model", "auto")
    options = {}
    if isinstance(model_name, dict):
        options = {k: v for k, v in model_name.items() if k != "preset"}
        model_name = model_name.get("preset", "auto")
    split = dict(cfg.get("split") or {})
    if seed is not None:
        split["seed"] = seed
    train_cfg = dict(cfg.get("train") or {})
    overrides = {**{key: train_cfg.get(key) for key in PLAN_SETTINGS},
                 "epochs": epochs or train_cfg.get("epochs"),
                 "batch_size": batch_size or train_cfg.get("batch_size"), "options": options}
    kind = source_kind(data)
    if kind == "images" and target:
        raise ConfigError("Image folders take their labels from sub-folder names",
                          received=f"--target {target}", fix="drop --target")
    from lepton.train import transfer

    backbone = transfer.transfer_plan(model_name, data, weights, image_size) \
        if kind == "images" else None
    if kind != "images" and (weights or image_size):
        raise ConfigError("--weights and --image-size are for image folders",
                          received=f"a {kind} source", fix="drop them")
    preprocessing = (transfer.image_preprocessing(cfg.get("preprocessing"), backbone, image_size)
                     if kind == "images" else cfg.get("preprocessing"))
    text_mode = None
    if model_name != "auto" and backbone is None:
        from lepton.train.presets import PRESETS

        text_mode = PRESETS[model_name].text_mode if model_name in PRESETS else None
    from lepton.store.prices import RunMeter, load_prices

    prices, meter = load_prices(), RunMeter()  # a bad price sheet fails before training
    t0 = time.perf_counter()
    prepared = (prepare_images(data, preprocessing, split) if kind == "images"
                else prepare_table(data, target, preprocessing, split, text_mode))
    runs: list[tuple[Any, Any]] = []  # (prepared data, plan) per candidate
    try:
        if backbone is not None:  # a pretrained backbone, fine-tuned (lepton/train/transfer)
            transfer.use_imagenet_statistics(prepared, log)
        plans = ([transfer.with_overrides(backbone, overrides)] if backbone is not None
                 else make_plans(model_name, prepared.kind, len(prepared.y_train), overrides))
        writer = process_rank() == 0  # under torchrun, rank 0 alone writes and records
        run_id = None if not writer else record.start_run(name or Path(out).name, {
            "data": str(data), "target": target, "model": model_name,
            "plans": [vars(p) for p in plans]})
        tried = []
        log(f"{prepared.kind} data: {prepared.info.get(ROWS[prepared.kind])} "
            f"(train / val / test), task {prepared.task}")
        cv_scores = None  # small tables: auto's candidates by k-fold CV (lepton/train/crossval)
        if crossval.applies(prepared, model_name, plans, int(train_cfg.get("cv_folds", 5))):
            prepared, plans, cv_scores = crossval.select(
                prepared, plans, lambda p, pl: _fit(p, pl, int(split.get("seed", 42)), None, 0,
                                                    lambda _e, _l: None),
                int(split.get("seed", 42)), int(train_cfg.get("cv_folds", 5)), log)
        runs += [(prepared, p) for p in plans]
        if backbone is not None and backbone.chosen_by:  # auto's backbone must earn its place:
            rival = prepare_images(data, cfg.get("preprocessing"), split)  # the small CNN too,
            runs += [(rival, p) for p in make_plans(  # on the same validation images
                "auto", rival.kind, len(rival.y_train), overrides)]
        for inputs, plan in runs:
            log(f"model: {plan.describe()}")
            fit = (transfer.fitter(_compile, _callbacks, _lbfgs)
                   if isinstance(plan, transfer.TransferPlan) else _fit)
            candidate, hist = fit(inputs, plan, int(split.get("seed", 42)), time_limit,
                                  verbose, lambda e, logs: record.log_metrics(run_id, logs, e))
            tried.append((min(hist.get("val_loss") or [float("inf")]), plan, candidate, hist))
        best = min(range(len(tried)), key=lambda i: tried[i][0])
        _, plan, net, history = tried[best]
        prepared = runs[best][0]
        if len(tried) > 1:
            log("picked " + plan.preset + " by validation loss: " + ", ".join(
                f"{p.preset} {v:.4f}" for v, p, _, _ in tried))
        train_seconds = time.perf_counter() - t0
        x_eval, y_eval, split_name = ((prepared.x_test, prepared.y_test, "test")
                                      if prepared.x_test is not None and len(prepared.y_test)
                                      else (prepared.x_val, prepared.y_val, "validation"))
        net.eval()
        outputs = np.asarray(net.predict(x_eval, batch_size=1024, verbose=0))
        metrics, figures = evaluate_outputs(prepared.task, y_eval, outputs, prepared.labels,
                                            history)
        scalars = headline(metrics)
        info = {**prepared.info, "evaluated on": f"{split_name} split",
                "model": plan.describe(), "candidates": ", ".join(
                    f"{p.preset} (val loss {v:.4f})" for v, p, _, _ in tried) if not cv_scores
                else ", ".join(f"{p.preset} (5-fold CV accuracy {a:.4f}, loss {v:.4f})"
                               for v, p, a in cv_scores),
                "epochs run": len(history.get("loss", [])),
                "training seconds": round(train_seconds, 1)}
        cost = meter.cost(prices, gpus=int(any(p.is_cuda for p in net.parameters())))
        priced = prices.as_of or prices.source
        info["cost"] = (f"{cost['cost_usd']:.6f} {prices.currency} ({cost['cpu_seconds']:.1f} "
                        f"CPU s, {cost['peak_memory_gb']:.2f} GB peak; prices of {priced})")
        metadata = {
            "task": prepared.task, "labels": prepared.labels,
            "preprocessing": prepared.pipeline.to_json(), "metrics": scalars,
            "threshold": 0.5, "history": history,
            "training": {"data": str(data),
                         "config": {"model": plan.preset, "plan": vars(plan), "split": split,
                                    "target": target}},
            "report_info": {k: v for k, v in info.items() if isinstance(v, (str, int, float))},
        }
        out = Path(out)
        if not writer:
            return TrainResult(path=out, report=out / "report.html", metrics=metrics,
                               history=history, plan=plan, seconds=time.perf_counter() - t0)
        from lepton.artifact.reference import safe_reference
        from lepton.artifact.save import save_artifact
        from lepton.atomic import atomic_directory

        reference = safe_reference(prepared, net, data, scalars, log)  # monitor's baseline
        with atomic_directory(out) as tmp:
            save_artifact(net, tmp, metadata=metadata,
                          lineage={"data_digest": data_hash(data), "run_id": run_id},
                          reference=reference)
            report = save_report(tmp / "report.html", f"Lepton model: {out.name}", metrics,
                                 figures, info)
        record.end_run(run_id, scalars, cost)
    except BaseException:
        record.end_run(locals().get("run_id"), None)
        raise
    finally:
        for inputs in {id(p): p for p in [prepared, *(r[0] for r in runs)]}.values():
            inputs.close()
    registered = record.register(out, name, run_id) if register else None
    return TrainResult(path=out, report=out / report.name, metrics=metrics, history=history,
                       plan=plan, seconds=time.perf_counter() - t0, registered=registered)
