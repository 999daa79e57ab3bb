"""Comparing champion and challenger on the same rows: a paired bootstrap interval of the
accuracy difference, and McNemar's exact test on the rows where they disagree.

Paired, because both models answer the same rows: resampling rows (not each model's score
separately) keeps the correlation between them, so the interval is as narrow as the data
allows and a point-estimate gain on a lucky holdout does not pass for a real one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

MIN_RESAMPLES = 1000


def paired_bootstrap(champion: np.ndarray, challenger: np.ndarray, *, resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Interval of mean(challenger) - mean(champion) (per-row correctness, 0/1), in points."""
    a, b = np.asarray(champion, np.float64), np.asarray(challenger, np.float64)
    n = len(a)
    resamples = max(int(resamples), MIN_RESAMPLES)
    if n == 0:
        return {"rows": 0, "difference": 0.0, "low": 0.0, "high": 0.0, "resamples": resamples}
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    delta = b - a
    for start in range(0, resamples, 256):
        idx = rng.integers(0, n, size=(min(256, resamples - start), n))
        diffs[start:start + len(idx)] = delta[idx].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return {"rows": n, "champion": float(a.mean() * 100), "challenger": float(b.mean() * 100),
            "difference": float(delta.mean() * 100), "low": float(low * 100),
            "high": float(high * 100), "confidence": confidence, "resamples": resamples}


def mcnemar(champion: np.ndarray, challenger: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test: of the rows only one model gets right, does the challenger win
    more than chance would?"""
    a, b = np.asarray(champion, bool), np.asarray(challenger, bool)
    only_b, only_a = int((b & ~a).sum()), int((a & ~b).sum())
    total = only_a + only_b
    p = 1.0 if total == 0 else float(stats.binomtest(only_b, total, 0.5).pvalue)
    return {"challenger_only": only_b, "champion_only": only_a, "p_value": p}
