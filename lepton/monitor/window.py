"""One window of the prediction log -> what the monitor compares: folded inputs, predicted
classes (or values) with their confidence, realised quality on feedback labels, latency.

Logged outputs come in two shapes: the V2 infer route logs the output tensors
(``{name: row}``), the V1 predict route logs the post-processed result (``{"label",
"probabilities"}`` or ``{"value"}``); both become a predicted class index and class
probabilities here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lepton.artifact.predictor import probabilities
from lepton.serve.sketches import fold_window, split_samples
from lepton.sketch.folding import fold

__all__ = ["fold_window", "latency", "outputs_of", "prediction_fold", "quality",
           "split_samples"]


def outputs_of(rows: list[dict[str, Any]], labels: list[Any], task: str | None
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted class index or value per row, class probabilities or None)."""
    names = [str(v) for v in labels]
    index = {n: i for i, n in enumerate(names)}
    preds, probas = [], []
    for row in rows:
        out = row["outputs"]
        if isinstance(out, dict) and "value" in out:
            preds.append(float(out["value"]))
            continue
        if isinstance(out, dict) and "probabilities" in out:
            p = [float(out["probabilities"].get(n, 0.0)) for n in names]
            probas.append(p)
            preds.append(index.get(str(out.get("label")), int(np.argmax(p))))
            continue
        tensor = next(iter(out.values())) if isinstance(out, dict) else out
        vector = np.asarray(tensor, dtype=np.float64).reshape(1, -1)
        if task == "regression":
            preds.append(float(vector[0, 0]))
            continue
        p = probabilities(vector, max(len(names), vector.shape[1], 2))[0]
        probas.append(p.tolist())
        preds.append(int(np.argmax(p)))
    kind = np.float64 if task == "regression" else np.int64
    prob = np.asarray(probas, dtype=np.float64) if probas and len(probas) == len(rows) else None
    return np.asarray(preds, dtype=kind), prob


def label_index(label: Any, labels: list[Any]) -> int | None:
    names = [str(v) for v in labels]
    if str(label) in names:
        return names.index(str(label))
    if isinstance(label, int) and not isinstance(label, bool):
        return label
    return None


def quality(rows: list[dict[str, Any]], preds: np.ndarray, proba: np.ndarray | None,
            labels: list[Any], task: str | None) -> dict[str, Any]:
    """Realised metrics on the rows with feedback, and a label-free estimate on all rows."""
    out: dict[str, Any] = {"predictions": len(rows)}
    if proba is not None and len(proba):
        # confidence-based performance estimation: if the model is calibrated, the mean
        # top-class probability is the accuracy it should have on these rows
        out["estimated_accuracy"] = float(proba.max(axis=1).mean())
    marked = [(i, r["label"]) for i, r in enumerate(rows) if r.get("label") is not None]
    out["labelled"] = len(marked)
    if not marked:
        out["status"] = "no feedback labels in this window"
        return out
    if task == "regression":
        y = np.asarray([float(v) for _, v in marked])
        err = preds[[i for i, _ in marked]] - y
        out.update(mae=float(np.abs(err).mean()), rmse=float(np.sqrt((err ** 2).mean())))
        return out
    pairs = [(i, label_index(v, labels)) for i, v in marked]
    pairs = [(i, t) for i, t in pairs if t is not None]
    if not pairs:
        out["status"] = "feedback labels match none of the model's classes"
        return out
    idx = np.asarray([i for i, _ in pairs])
    truth = np.asarray([t for _, t in pairs])
    pred = preds[idx]
    correct = pred == truth
    out["accuracy"] = float(correct.mean())
    f1s = []
    for k in np.union1d(truth, pred):
        tp = int(((pred == k) & (truth == k)).sum())
        fp, fn = int(((pred == k) & (truth != k)).sum()), int(((pred != k) & (truth == k)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    out["f1_macro"] = float(np.mean(f1s))
    if proba is not None:
        conf = proba[idx].max(axis=1)
        bins = np.minimum((conf * 10).astype(int), 9)
        ece = sum(abs(conf[bins == b].mean() - correct[bins == b].mean()) * (bins == b).mean()
                  for b in range(10) if (bins == b).any())
        out["calibration_error"] = float(ece)
        out["calibration"] = [{"confidence": float(conf[bins == b].mean()),
                               "accuracy": float(correct[bins == b].mean()),
                               "rows": int((bins == b).sum())}
                              for b in range(10) if (bins == b).any()]
    return out


def prediction_fold(reference: dict[str, Any], preds: np.ndarray) -> dict[str, Any] | None:
    ref = reference.get("predictions")
    if ref is None or not len(preds):
        return None
    return fold(ref, preds.astype(np.float64))


def latency(rows: list[dict[str, Any]]) -> dict[str, Any]:
    values = np.asarray([r["latency_ms"] for r in rows if r.get("latency_ms") is not None])
    if not len(values):
        return {"status": "no latency logged"}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"mean_ms": float(values.mean()), "p50_ms": float(p50), "p95_ms": float(p95),
            "p99_ms": float(p99)}
