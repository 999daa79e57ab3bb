"""Evaluation plots as PNG bytes, drawn with matplotlib's Agg backend (no display needed).

Each function returns the PNG bytes, so the caller decides whether they go to a file or
into the HTML report as base64.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def _figure(width: float = 5.0, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def training_curves(history: dict[str, list[float]]) -> bytes:
    """Loss (left) and the first other metric (right) per epoch, train and validation."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=100)
    metric = next((k for k in history if k not in ("loss", "lr") and not k.startswith("val_")),
                  None)
    keys = ["loss"] + ([metric] if metric else [])
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for name, style in ((key, "-"), (f"val_{key}", "--")):
            values = history.get(name)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker="o", markersize=3,
                        label="validation" if name.startswith("val_") else "training")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    return _png(fig)


def confusion_matrix(matrix: list[list[int]], labels: list[Any]) -> bytes:
    """Counts with the row-normalised share as colour; true labels down, predicted across."""
    cm = np.asarray(matrix, dtype=np.int64)
    k = len(cm)
    fig, ax = _figure(max(4.0, 0.5 * k + 2.5), max(3.5, 0.5 * k + 2.0))
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    names = [str(v) for v in labels]
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_title("Confusion matrix")
    return _png(fig)


def _one_vs_rest(y_true: np.ndarray, proba: np.ndarray, labels: list[Any]):
    """(name, binary truth, score) per curve: the positive class if binary, else each class."""
    if proba.shape[1] == 2:
        return [(str(labels[1]), y_true == 1, proba[:, 1])]
    return [(str(labels[c]), y_true == c, proba[:, c]) for c in range(proba.shape[1])
            if 0 < (y_true == c).sum() < len(y_true)]


def roc_curve(y_true: np.ndarray, proba: np.ndarray, labels: list[Any]) -> bytes:
    from sklearn.metrics import auc
    from sklearn.metrics import roc_curve as sk_roc

    fig, ax = _figure()
    for name, truth, score in _one_vs_rest(y_true, proba, labels):
        fpr, tpr, _ = sk_roc(truth, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return _png(fig)


def pr_curve(y_true: np.ndarray, proba: np.ndarray, labels: list[Any]) -> bytes:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = _figure()
    for name, truth, score in _one_vs_rest(y_true, proba, labels):
        precision, recall, _ = precision_recall_curve(truth, score)
        ap = average_precision_score(truth, score)
        ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall curve")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    return _png(fig)


def calibration(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> bytes:
    """Reliability diagram: accuracy against confidence of the predicted class."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    mids, accs = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            mids.append(conf[mask].mean())
            accs.append(correct[mask].mean())
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    ax.plot(mids, accs, marker="o", label="model")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("Calibration")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def regression_scatter(y_true: np.ndarray, y_pred: np.ndarray) -> bytes:
    fig, ax = _figure()
    ax.scatter(y_true, y_pred, s=8, alpha=0.6)
    lo, hi = float(min(np.min(y_true), np.min(y_pred))), float(max(np.max(y_true),
                                                                   np.max(y_pred)))
    ax.plot([lo, hi], [lo, hi], ":", color="grey")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted against true")
    ax.grid(alpha=0.3)
    return _png(fig)


def residuals(y_true: np.ndarray, y_pred: np.ndarray) -> bytes:
    fig, ax = _figure()
    ax.hist(np.asarray(y_pred) - np.asarray(y_true), bins=40)
    ax.set_xlabel("prediction - true")
    ax.set_title("Residuals")
    ax.grid(alpha=0.3)
    return _png(fig)
