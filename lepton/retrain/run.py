"""``lepton retrain`` as a function: feedback-labelled traffic joined to its logged inputs,
a challenger trained from the champion's stored configuration on original ∪ production rows,
both models scored on the same rows, promotion only when a paired interval says so, and a
decision record written whatever happens.

The original test split is re-derived from the champion's recorded split (seed, fractions)
and kept out of the challenger's training data, so both are judged on rows neither saw.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lepton.errors import ConflictError, DataError
from lepton.monitor.run import parse_duration, parse_since
from lepton.retrain.compare import mcnemar, paired_bootstrap


def _production_rows(store: Any, name: str, target: str, since: float | None) -> pd.DataFrame:
    from lepton.store._crypt import decryptor
    from lepton.store._monitor import window_rows

    labelled = [r for r in window_rows(store, name, since=since, decrypt=decryptor())
                if r["label"] is not None]
    if not labelled:
        raise DataError(f"No feedback labels for '{name}' to retrain on",
                        fix="send labels with lepton feedback add (or POST /v1/feedback)")
    kept = [r for r in labelled if isinstance(r["input_sample"], dict)]
    if not kept:
        raise DataError(f"{len(labelled)} predictions of '{name}' have feedback, but their "
                        "inputs were not kept", fix="serve with --log-inputs so labelled "
                        "traffic can be trained on")
    frame = pd.DataFrame([r["input_sample"] for r in kept])
    frame[target] = [r["label"] for r in kept]
    return frame


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def _correct(path: str | Path, frame: pd.DataFrame, target: str) -> np.ndarray:
    from lepton.artifact.predictor import Predictor

    predictor = Predictor.from_artifact(path)
    predicted = predictor.predict_frame(frame[predictor.pipeline.input_columns])["prediction"]
    return (predicted.astype(str).to_numpy() == frame[target].astype(str).to_numpy())


def _original_split(data: Path, training: dict[str, Any], meta_prep: dict | None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(original rows the champion could train on, its test rows), as its split made them."""
    from lepton.data import Pipeline, read_table
    from lepton.data.split import split_indices

    config = training.get("config") or {}
    target, split = config.get("target"), dict(config.get("split") or {})
    frame = read_table(data)
    pipeline = Pipeline.from_config({}, target=target)
    frame = pipeline.clean_training_rows(frame).reset_index(drop=True)
    pipeline.fit_target(frame[target])
    y = pipeline.encode_target(frame[target])
    parts = split_indices(y, test=float(split.get("test", 0.2)), val=float(split.get("val", 0.1)),
                          seed=int(split.get("seed", 42)), stratify=pipeline.task != "regression")
    test = parts.get("test", np.array([], dtype=np.int64))
    return frame.drop(index=test), frame.iloc[test]


def _guard(store: Any, name: str, trigger: str, cooldown_s: float, max_per_day: int,
           now: float) -> str | None:
    """Why retraining must not run now (None when it may): loops are refused."""
    from lepton.store._monitor import list_decisions

    recent = list_decisions(store, name, since=now - 86400)
    promoted = [d for d in recent if d.get("promoted")]
    if len(promoted) >= max_per_day:
        return f"{len(promoted)} promotions in the last 24 h (at most {max_per_day})"
    if promoted and now - promoted[-1]["created_at"] < cooldown_s:
        return f"cooldown: the last promotion was {now - promoted[-1]['created_at']:.0f} s ago"
    if trigger != "manual" and recent and recent[-1].get("trigger") == "promotion":
        return "a promotion does not trigger retraining"
    return None


def retrain(model: str, *, data: str | Path, feedback_since: Any = None, min_gain: float = 0.5,
            max_drop: float = 0.5, resamples: int = 2000, trigger: str = "manual",
            evidence: dict | None = None, epochs: int | None = None, dry_run: bool = False,
            allow_data_change: bool = False, cooldown: str = "1h", max_per_day: int = 3,
            store: Any = None, holdout: float = 0.5, seed: int = 0, min_labels: int = 200,
            max_accuracy_drop: float = 2.0, every: str = "7d") -> dict[str, Any]:
    """Champion/challenger retraining; returns the decision record (also stored). The
    trigger is checked first (``retrain.triggers``: drift in a stored report, ``min_labels``
    labels or a ``max_accuracy_drop`` on feedback, ``every`` for a schedule)."""
    from lepton.registry import Registry
    from lepton.retrain.triggers import check_trigger
    from lepton.store import Store
    from lepton.store._monitor import save_decision
    from lepton.train.datasets import data_hash
    from lepton.train.run import train

    store = store if store is not None else Store.open()
    registry = Registry(store)
    champion = registry.resolve(model)
    name, now = champion["name"], time.time()
    record: dict[str, Any] = {"model": name, "champion_version": champion["version"],
                              "trigger": trigger, "evidence": evidence or {},
                              "min_gain": min_gain, "max_drop": max_drop, "promoted": False}
    training = champion.get("training") or {}
    config = training.get("config") or {}
    target = config.get("target")
    blocked = _guard(store, name, trigger, parse_duration(cooldown) or 0.0, max_per_day, now)
    if not blocked:
        blocked, record["trigger_evidence"] = check_trigger(
            store, champion, trigger, now=now, since=parse_since(feedback_since, now),
            min_labels=min_labels, max_accuracy_drop=max_accuracy_drop, every=every)
        blocked = blocked and f"trigger '{trigger}' does not hold: {blocked}"
    if blocked:
        record["reason"] = f"not retrained: {blocked}"
        record["id"] = save_decision(store, record)
        return record
    data = Path(data)
    work = store.workspace / "retrain" / name / f"{int(now * 1000)}"
    if not target:  # a model.save artifact (the demo's CNN): tensors, not a table
        scores_of = _tensor_challenger(store, champion, data, record, work,
                                       parse_since(feedback_since, now), epochs, holdout, seed)
        return _decide(store, registry, champion, record, scores_of, min_gain, max_drop,
                       resamples, seed, dry_run)
    recorded = (champion.get("artifact_lineage") or {}).get("data_digest")
    actual = data_hash(data)
    if recorded and actual != recorded and not allow_data_change:
        raise ConflictError("The original data no longer matches the champion's digest",
                            expected=recorded[:16], received=actual[:16],
                            fix="pass the data it was trained on, or --allow-data-change")
    prod = _production_rows(store, name, target, parse_since(feedback_since, now))
    order = np.random.default_rng(seed).permutation(len(prod))
    cut = int(round(len(prod) * (1 - holdout)))
    prod_train, prod_test = prod.iloc[order[:cut]], prod.iloc[order[cut:]]
    original, original_test = _original_split(data, training, None)
    union = pd.concat([original, prod_train[original.columns.intersection(prod_train.columns)]],
                      ignore_index=True).drop_duplicates().reset_index(drop=True)
    work.mkdir(parents=True, exist_ok=True)
    union.to_csv(work / "data.csv", index=False)
    record["data"] = {"rows": len(union), "original_rows": len(original),
                      "production_rows": len(prod), "production_train": len(prod_train),
                      "production_holdout": len(prod_test), "digest": _digest(union),
                      "original_digest": actual}
    plan = config.get("plan") or {}
    result = train(work / "data.csv", target, model=config.get("model", "auto"),
                   config={"split": {**(config.get("split") or {}), "test": 0.0}},
                   epochs=epochs or plan.get("epochs"), out=work / "challenger",
                   register=False, name=f"{name}-challenger")
    record["challenger_path"] = str(result.path)

    def scores_of(path: str | Path) -> dict[str, np.ndarray]:
        return {label: _correct(path, rows, target) for label, rows in
                (("production_holdout", prod_test), ("original_test", original_test))}

    return _decide(store, registry, champion, record, scores_of, min_gain, max_drop,
                   resamples, seed, dry_run)


def _tensor_challenger(store: Any, champion: dict[str, Any], data: Path,
                       record: dict[str, Any], work: Path, since: float | None,
                       epochs: int | None, holdout: float, seed: int):
    """Train the challenger of a tensor model (``lepton.retrain.images``); returns how to
    score an artifact on the production holdout and the original test."""
    from lepton.artifact.manifest import read_manifest
    from lepton.retrain import images

    manifest = read_manifest(champion["path"])
    x_train, y_train, x_test, y_test = images.load_original(data)
    labels = (manifest.metadata or {}).get("labels") or list(range(int(y_train.max()) + 1))
    x_prod, y_prod = images.production_rows(store, champion["name"], since, labels,
                                            tuple(x_train.shape[1:]))
    order = np.random.default_rng(seed).permutation(len(x_prod))
    cut = int(round(len(x_prod) * (1 - holdout)))
    train_idx, test_idx = order[:cut], order[cut:]
    x = np.concatenate([x_train.astype(np.float32), x_prod[train_idx]])
    y = np.concatenate([y_train.astype(np.int64), y_prod[train_idx]])
    record["data"] = {"rows": len(x), "original_rows": len(x_train),
                      "production_rows": len(x_prod), "production_train": len(train_idx),
                      "production_holdout": len(test_idx), "digest": images.digest(x, y),
                      "original_digest": images.digest(x_train, y_train, x_test, y_test)}
    work.mkdir(parents=True, exist_ok=True)
    path = images.train_challenger(champion["path"], x, y, work / "challenger",
                                   epochs or 1, seed, {"retrained_on": record["data"]})
    record["challenger_path"] = str(path)

    def scores_of(artifact: str | Path) -> dict[str, np.ndarray]:
        return {"production_holdout": images.correct(artifact, x_prod[test_idx],
                                                     y_prod[test_idx]),
                "original_test": images.correct(artifact, x_test, y_test)}

    return scores_of


def _decide(store: Any, registry: Any, champion: dict[str, Any], record: dict[str, Any],
            scores_of, min_gain: float, max_drop: float, resamples: int, seed: int,
            dry_run: bool) -> dict[str, Any]:
    """Register the challenger, score both on the same rows, decide, record."""
    from lepton.store._monitor import save_decision

    name = champion["name"]
    challenger = registry.register(record.pop("challenger_path"), name,
                                   description=f"challenger of v{champion['version']} "
                                               f"({record['trigger']})")
    record["challenger_version"] = challenger["version"]
    before, after = scores_of(champion["path"]), scores_of(challenger["path"])
    scores = {}
    for label in ("production_holdout", "original_test"):
        a, b = before[label], after[label]
        scores[label] = {**paired_bootstrap(a, b, resamples=resamples, seed=seed),
                         "mcnemar": mcnemar(a, b)}
    record["comparison"] = scores
    gain, orig = scores["production_holdout"], scores["original_test"]
    wins = gain["low"] >= min_gain
    keeps = orig["rows"] == 0 or orig["difference"] >= -max_drop
    if not wins:
        record["reason"] = (f"the gain on the production holdout is not sure: 95% interval "
                            f"[{gain['low']:.2f}, {gain['high']:.2f}] points, lower bound "
                            f"below --min-gain {min_gain}")
    elif not keeps:
        record["reason"] = (f"the original test drops {-orig['difference']:.2f} points "
                            f"(at most {max_drop})")
    else:
        record["reason"] = (f"gain {gain['difference']:.2f} points on the production holdout "
                            f"(95% interval [{gain['low']:.2f}, {gain['high']:.2f}]); original "
                            f"test {orig['difference']:+.2f} points")
        record["promoted"] = not dry_run
        if dry_run:
            record["reason"] = "dry run, would promote: " + record["reason"]
    if record["promoted"]:
        registry.promote(name, challenger["version"], "production",
                         reason=f"retrain: {record['reason']}")
    record["id"] = save_decision(store, record)
    return record
