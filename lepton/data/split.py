"""Seeded train / validation / test splits (stratified for classes) and class weights."""

from __future__ import annotations

import numpy as np

from lepton.errors import ConfigError


def split_indices(y: np.ndarray, *, test: float = 0.2, val: float = 0.1, seed: int = 42,
                  stratify: bool = True) -> dict[str, np.ndarray]:
    """Indices of the train / val / test rows; ``val`` is a fraction of the whole data.

    Stratified on ``y`` when it is a class vector with at least two rows per class, so small
    imbalanced data keeps its class mix in every split. The same seed gives the same split.
    """
    from sklearn.model_selection import train_test_split

    for name, frac in (("test", test), ("val", val)):
        if not 0 <= frac < 1:
            raise ConfigError(f"Split fraction `{name}` must be in [0, 1)", received=frac)
    if test + val >= 0.9:
        raise ConfigError("Split fractions leave too little training data",
                          expected="test + val < 0.9", received=f"test={test}, val={val}")
    idx = np.arange(len(y))
    strat = y if stratify and _stratifiable(y) else None
    out: dict[str, np.ndarray] = {}
    rest = idx
    if test > 0:
        rest, out["test"] = train_test_split(idx, test_size=test, random_state=seed,
                                             stratify=strat)
    if val > 0:
        strat_rest = y[rest] if strat is not None and _stratifiable(y[rest]) else None
        rest, out["val"] = train_test_split(rest, test_size=val / (1 - test),
                                            random_state=seed, stratify=strat_rest)
    out["train"] = np.sort(rest)
    return {k: np.sort(v) for k, v in out.items()}


def _stratifiable(y: np.ndarray) -> bool:
    if y.dtype.kind not in "iub":
        return False
    counts = np.bincount(y.astype(np.int64))
    return bool(counts[counts > 0].min() >= 2)


def class_weights(y: np.ndarray, n_classes: int, mode: str = "auto") -> dict[int, float] | None:
    """Weights that make rare classes count: "balanced", "auto" or "none".

    "balanced" is n / (k * count); "auto" uses its square root, and only when the largest class
    is at least twice the smallest (milder, so accuracy does not pay for recall).
    """
    if mode in (None, "none", False):
        return None
    if mode not in ("auto", "balanced"):
        raise ConfigError("Unknown class_weight mode", expected="auto, balanced or none",
                          received=mode)
    counts = np.bincount(y.astype(np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    if mode == "auto":
        if counts[present].max() < 2 * counts[present].min():
            return None
        weights = np.sqrt(weights)
    return {i: float(w) for i, w in enumerate(weights)}
