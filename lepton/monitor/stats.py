"""Drift statistics on binned counts (NumPy/SciPy only): a reference and a window, both as
counts on the reference's bins (see ``lepton.sketch.folding.fold``).

Which test, following Evidently's defaults: windows of at most ``SMALL`` rows get a test
(two-sample Kolmogorov-Smirnov for numeric features, chi-squared for categorical and
discrete ones, drift at p < 0.05); larger windows get a distance, because on 10⁵ rows any
trivial difference is "significant": the Wasserstein distance normalised by the reference
std for numeric features, the Jensen-Shannon distance for categorical ones, drift at ≥ 0.1.
PSI over the 30 quantile bins (plus the two tails) is reported for every feature.

Binning makes KS a lower bound of the exact statistic (the largest CDF gap is looked for at
the bin edges only) and Wasserstein an approximation (linear CDF inside each bin); both are
what a sketch that never keeps raw rows can give, and they agree with the exact values to
about 1/30 of the distribution.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

SMALL = 1000
P_VALUE = 0.05
DISTANCE = 0.1
PSI = 0.1
EPS = 1e-4  # smoothing of empty bins (Evidently's), so PSI and JS stay finite


def _fractions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, dtype=np.float64)


def psi(ref: np.ndarray, cur: np.ndarray) -> float:
    """Population stability index: sum (q - p) ln(q / p) over bins, empty bins smoothed."""
    p = np.maximum(_fractions(ref), EPS)
    q = np.maximum(_fractions(cur), EPS)
    return float(((q - p) * np.log(q / p)).sum())


def jensen_shannon(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1])."""
    p, q = _fractions(ref), _fractions(cur)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / m[mask])).sum())

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def ks(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample KS test on binned samples."""
    n, m = int(ref.sum()), int(cur.sum())
    if n == 0 or m == 0:
        return 0.0, 1.0
    d = float(np.abs(np.cumsum(_fractions(ref)) - np.cumsum(_fractions(cur))).max())
    n_eff = max(1, round(n * m / (n + m)))
    return d, float(sps.kstwo.sf(d, n_eff))


def chi2(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of chi-squared goodness of fit of the window to the reference
    frequencies; bins empty in both are left out."""
    keep = (ref > 0) | (cur > 0)
    p = np.maximum(_fractions(ref)[keep], EPS)
    p = p / p.sum()
    observed = cur[keep].astype(np.float64)
    if observed.sum() == 0 or keep.sum() < 2:
        return 0.0, 1.0
    statistic, p_value = sps.chisquare(observed, p * observed.sum())
    return float(statistic), float(p_value)


def wasserstein(edges: np.ndarray, ref: np.ndarray, cur: np.ndarray, cur_min: float | None,
                cur_max: float | None, scale: float) -> float:
    """W1 between two binned distributions (counts with a tail bin each side of ``edges``),
    the CDF taken linear inside each bin; normalised by ``scale`` (the reference std)."""
    f_ref, f_cur = np.cumsum(_fractions(ref))[:-1], np.cumsum(_fractions(cur))[:-1]
    gap = np.abs(f_ref - f_cur)  # CDF gap at each edge
    inner = float(((gap[1:] + gap[:-1]) / 2 * np.diff(edges)).sum())
    q = _fractions(cur)
    below = q[0] * max(0.0, edges[0] - (cur_min if cur_min is not None else edges[0])) / 2
    above = q[-1] * max(0.0, (cur_max if cur_max is not None else edges[-1]) - edges[-1]) / 2
    return (inner + below + above) / (scale if scale > 0 else 1.0)


def chunk_threshold(chunks: list[list[int]], total: np.ndarray, score, chunk_rows: int,
                    window_rows: int) -> float | None:
    """NannyML's alarm: mean + 3σ of the statistic over the reference's chunks (each chunk
    against the rest), rescaled from the chunk size to the window size (sampling noise of
    these statistics shrinks as 1/√rows)."""
    if len(chunks) < 3 or window_rows <= 0:
        return None
    values = []
    for chunk in chunks:
        c = np.asarray(chunk, dtype=np.int64)
        values.append(score(total - c, c))
    mean, std = float(np.mean(values)), float(np.std(values))
    return (mean + 3 * std) * math.sqrt(max(chunk_rows, 1) / window_rows)
