"""Per-feature drift of one window against the reference: the statistic, its p-value or
distance, both thresholds (fixed, and reference mean ± 3σ over chunks), an effect size, PSI.

A feature drifts when the fixed threshold is crossed *and* (where the reference has chunks)
the score is above what chunks of the training data themselves show: the second condition
keeps many-feature, many-window monitoring from alarming on noise or on trivia.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lepton.monitor import stats


def _numeric(ref: dict[str, Any], cur: dict[str, Any], n: int) -> dict[str, Any]:
    r, c = np.asarray(ref["counts"], np.int64), np.asarray(cur["counts"], np.int64)
    edges = np.asarray(ref["bins"], np.float64)
    scale = float(ref.get("std") or 0.0)
    if n <= stats.SMALL:
        method = "ks"
        score, p_value = stats.ks(r, c)
        fixed = p_value < stats.P_VALUE

        def chunk_score(a, b):
            return stats.ks(a, b)[0]
        chunk_value, threshold = score, stats.P_VALUE
    else:
        method, p_value = "wasserstein", None
        score = stats.wasserstein(edges, r, c, cur.get("min"), cur.get("max"), scale)
        fixed, threshold = score >= stats.DISTANCE, stats.DISTANCE

        def chunk_score(a, b):
            return stats.wasserstein(edges, a, b, None, None, scale)
        chunk_value = score
    out = {"method": method, "score": score, "p_value": p_value, "threshold": threshold,
           "fixed_alarm": bool(fixed)}
    mean = cur["sum"] / n if n else None
    if mean is not None and ref.get("mean") is not None:
        out["effect"] = {"mean": mean, "reference_mean": ref["mean"],
                         "std_mean_difference": (mean - ref["mean"]) / scale if scale else 0.0}
    return _finish(out, ref, r, c, n, chunk_score, chunk_value)


def _categorical(ref: dict[str, Any], cur: dict[str, Any], n: int) -> dict[str, Any]:
    r, c = np.asarray(ref["counts"], np.int64), np.asarray(cur["counts"], np.int64)
    js = stats.jensen_shannon(r, c)
    if n <= stats.SMALL:
        statistic, p_value = stats.chi2(r, c)
        out = {"method": "chi2", "score": statistic, "p_value": p_value,
               "threshold": stats.P_VALUE, "fixed_alarm": bool(p_value < stats.P_VALUE)}
    else:
        out = {"method": "jensen_shannon", "score": js, "p_value": None,
               "threshold": stats.DISTANCE, "fixed_alarm": bool(js >= stats.DISTANCE)}
    share_ref, share_cur = r / max(r.sum(), 1), c / max(c.sum(), 1)
    values = [*map(str, ref.get("values", [])), "(other)"]
    moved = int(np.argmax(np.abs(share_cur - share_ref)))
    out["effect"] = {"jensen_shannon": js, "most_changed": values[moved] if moved < len(values)
                     else None, "share": float(share_cur[moved]),
                     "reference_share": float(share_ref[moved])}
    return _finish(out, ref, r, c, n, stats.jensen_shannon, js)


def _finish(out: dict[str, Any], ref: dict[str, Any], r: np.ndarray, c: np.ndarray, n: int,
            chunk_score, chunk_value: float) -> dict[str, Any]:
    out["psi"] = stats.psi(r, c)
    limit = None
    if ref.get("chunk_counts"):
        limit = stats.chunk_threshold(ref["chunk_counts"], r, chunk_score,
                                      int(ref.get("chunk_rows", 1)), n)
    out["chunk_threshold"] = limit
    out["chunk_alarm"] = None if limit is None else bool(chunk_value > limit)
    out["drifted"] = bool(out["fixed_alarm"] and out["chunk_alarm"] is not False)
    return out


def feature_drift(name: str, ref: dict[str, Any], cur: dict[str, Any] | None) -> list[dict]:
    """One result per monitored feature (text columns give two: token length, first token)."""
    kind = ref.get("kind", "numeric")
    if kind == "text":
        cur = cur or {}
        return [*feature_drift(f"{name}.token_length", ref["token_length"],
                               cur.get("token_length")),
                *feature_drift(f"{name}.first_token", ref["first_token"],
                               cur.get("first_token"))]
    n = 0 if cur is None else int(cur.get("n", sum(cur.get("counts", []))))
    base = {"feature": name, "kind": kind, "rows": n}
    if n == 0:
        return [{**base, "method": None, "drifted": False, "status": "no data"}]
    if "counts" not in ref:  # a reference written before bins existed: nothing to compare
        return [{**base, "method": None, "drifted": False,
                 "status": "the reference has no histogram for this feature"}]
    if kind in ("categorical", "discrete"):
        return [{**base, **_categorical(ref, cur, n)}]
    return [{**base, **_numeric(ref, cur, n)}]


def summarize(features: list[dict[str, Any]]) -> dict[str, Any]:
    """Which features drifted; dataset drift when half of the compared features do."""
    compared = [f for f in features if f.get("method")]
    drifted = [f["feature"] for f in compared if f["drifted"]]
    share = len(drifted) / len(compared) if compared else 0.0
    return {"features": features, "drifted": drifted, "compared": len(compared),
            "share": share, "dataset_drift": bool(compared) and share >= 0.5}
