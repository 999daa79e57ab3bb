"""Classification and regression metrics (SPEC §3), computed with scikit-learn.

``classification_metrics`` takes class probabilities, so one call gives accuracy, precision,
recall, F1, ROC-AUC, PR-AUC, log loss, the confusion matrix and calibration (Brier score and
expected calibration error). Every value is a plain float or list, ready for JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lepton.errors import ShapeError


def _proba(y_prob: np.ndarray, n_classes: int) -> np.ndarray:
    p = np.asarray(y_prob, dtype=np.float64)
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        p = p.reshape(-1)
        p = np.stack([1 - p, p], axis=1)
    if p.shape[1] != n_classes:
        raise ShapeError("Predicted probabilities do not match the number of classes",
                         expected=f"(rows, {n_classes})", received=f"shape {p.shape}")
    return p


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return float(ece)


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray,
                           labels: list[Any] | None = None,
                           threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of class indices ``y_true`` against probabilities ``y_prob`` (rows, classes).

    Binary problems report precision / recall / F1 of the positive class (the second label)
    at ``threshold``; multiclass ones report macro averages (and weighted F1).
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    n_classes = len(labels) if labels else max(int(y_true.max()) + 1, np.shape(y_prob)[-1])
    proba = _proba(y_prob, n_classes)
    if len(proba) != len(y_true):
        raise ShapeError("Predictions and labels have different lengths",
                         expected=len(y_true), received=len(proba))
    binary = n_classes == 2
    y_pred = (proba[:, 1] >= threshold).astype(np.int64) if binary else proba.argmax(axis=1)
    classes = list(range(n_classes))
    clipped = np.clip(proba, 1e-7, 1)
    avg = "binary" if binary else "macro"
    out: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, average=avg, labels=classes
                                               if not binary else None, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, average=avg, labels=classes
                                         if not binary else None, zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, average=avg, labels=classes
                                 if not binary else None, zero_division=0)),
        "loss": float(skm.log_loss(y_true, clipped / clipped.sum(axis=1, keepdims=True),
                                   labels=classes)),
        "brier": float(np.mean(np.sum((proba - np.eye(n_classes)[y_true]) ** 2, axis=1))),
        "ece": expected_calibration_error(y_true, proba),
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }
    if not binary:
        out["f1_weighted"] = float(skm.f1_score(y_true, y_pred, average="weighted",
                                                zero_division=0))
    present = np.unique(y_true)
    if len(present) >= 2:
        if binary:
            out["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
            out["pr_auc"] = float(skm.average_precision_score(y_true, proba[:, 1]))
        elif len(present) == n_classes:
            p = proba / proba.sum(axis=1, keepdims=True)
            out["roc_auc"] = float(skm.roc_auc_score(y_true, p, multi_class="ovr",
                                                     average="macro"))
    per_class = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes,
                                                    zero_division=0)
    names = [str(v) for v in (labels or classes)]
    out["per_class"] = {
        name: {"precision": float(per_class[0][i]), "recall": float(per_class[1][i]),
               "f1": float(per_class[2][i]), "support": int(per_class[3][i])}
        for i, name in enumerate(names)}
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, MSE, RMSE, R², median absolute error and MAPE (where no target is zero)."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if len(y_true) != len(y_pred):
        raise ShapeError("Predictions and targets have different lengths",
                         expected=len(y_true), received=len(y_pred))
    mse = float(skm.mean_squared_error(y_true, y_pred))
    out = {"n": int(len(y_true)), "mae": float(skm.mean_absolute_error(y_true, y_pred)),
           "mse": mse, "rmse": float(np.sqrt(mse)), "loss": mse,
           "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
           "median_ae": float(skm.median_absolute_error(y_true, y_pred))}
    if np.all(y_true != 0):
        out["mape"] = float(skm.mean_absolute_percentage_error(y_true, y_pred))
    return out


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics only (for tables, the store and the artifact metadata)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
            and np.isfinite(v)}
