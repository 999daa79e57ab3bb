"""``--model auto`` on small tables: choose the candidate by k-fold cross-validation.

On a table of a few hundred rows one validation split holds a few dozen rows; which candidate
wins on it is partly luck (on breast cancer the MLP won the split and lost the test to plain
logistic regression). Here the candidates are scored on k stratified folds of the training
and validation rows together, the simplest candidate (listed first) is kept unless another
is better on the mean fold accuracy (mean fold loss for regression), and the winner is then
trained on all of those rows, for the number of epochs its folds needed (median of their
best epochs), so no row is spent on validation alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

CV_ROWS = 3000    # tables with fewer training + validation rows are cross-validated
FOLDS = 5


def applies(prepared: Any, model: str, plans: list, folds: int) -> bool:
    """Cross-validate: auto's several candidates on a small in-memory table."""
    n = len(prepared.y_train) + len(prepared.y_val)
    return (model == "auto" and folds >= 2 and len(plans) > 1 and prepared.kind == "tabular"
            and prepared.dense_train is not None and n < CV_ROWS)


def stratified_folds(y: np.ndarray, k: int, seed: int, classes: bool) -> list[np.ndarray]:
    """k disjoint index sets; each class (for classification) spread evenly over them."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if classes else [np.arange(len(y))]
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for members in groups:
        for i, row in enumerate(rng.permutation(members)):
            folds[(i + offset) % k].append(int(row))
        offset += len(members)
    return [np.sort(np.array(f, dtype=np.int64)) for f in folds]


def _with_rows(prepared: Any, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
               y_val: np.ndarray) -> Any:
    return dataclasses.replace(prepared, dense_train=x, train_read=lambda idx: x[idx],
                               y_train=y, x_val=x_val, y_val=y_val)


def _score(history: dict[str, list[float]], classes: bool) -> tuple[float, float, int]:
    """(accuracy, loss, epochs) at the epoch early stopping kept (lowest validation loss)."""
    losses = history.get("val_loss") or [float("inf")]
    best = int(np.argmin(losses))
    accuracy = history.get("val_accuracy", [0.0] * len(losses))[best] if classes else 0.0
    return float(accuracy), float(losses[best]), best + 1


def select(prepared: Any, plans: list, fit: Callable, seed: int, folds: int = FOLDS,
           log: Callable[[str], None] = lambda _m: None) -> tuple[Any, list, list[tuple]]:
    """Score ``plans`` by ``folds``-fold CV through ``fit(prepared, plan) -> (net, history)``.

    Returns (prepared with every training and validation row as training data, [the winner
    with its epoch budget fixed], [(mean loss, plan, accuracy) per candidate]).
    """
    classes = prepared.task != "regression"
    x = np.concatenate([prepared.dense_train, prepared.x_val])
    y = np.concatenate([prepared.y_train, prepared.y_val])
    parts = stratified_folds(y, folds, seed, classes)
    scored = []
    for plan in plans:
        results = []
        for i, held in enumerate(parts):
            rest = np.concatenate([p for j, p in enumerate(parts) if j != i])
            _net, history = fit(_with_rows(prepared, x[rest], y[rest], x[held], y[held]), plan)
            results.append(_score(history, classes))
        accuracy, loss = (float(np.mean([r[k] for r in results])) for k in (0, 1))
        epochs = int(np.median([r[2] for r in results]))
        scored.append((loss, plan, accuracy, epochs))
        log(f"{folds}-fold CV {plan.preset}: accuracy {accuracy:.4f}, loss {loss:.4f}")
    winner = scored[0]
    for candidate in scored[1:]:  # a later (bigger) candidate must be strictly better
        better = (candidate[2] > winner[2]) if classes else (candidate[0] < winner[0])
        if better:
            winner = candidate
    _loss, plan, _acc, epochs = winner
    # all rows, the folds' epoch count, no early stop (the validation rows are training rows)
    final = dataclasses.replace(plan, epochs=max(1, epochs), patience=max(1, epochs) + 1,
                                min_epochs=0, options=dict(plan.options))
    full = _with_rows(prepared, x, y, prepared.x_val, prepared.y_val)
    return full, [final], [(loss, p, acc) for loss, p, acc, _e in scored]
