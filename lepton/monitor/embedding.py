"""Embedding drift: the penultimate-layer vectors of a window's kept inputs against the
reference's sample (``reference["embeddings"]``), by the maximum mean discrepancy (MMD).

MMD² with an RBF kernel compares whole distributions of vectors, so it sees a shift that no
single pixel or token statistic shows (inverted digits, another topic). Both samples hold at
most 256 rows, projected to at most 32 dimensions exactly as the reference was
(``lepton.sketch.reference.project``), and the kernel's bandwidth is the reference's (the
median heuristic at training time), so a window cannot move the yardstick it is measured by.

The p-value comes from a permutation test (500 seeded permutations of the pooled rows; the
joint kernel matrix is computed once and every permutation is one matrix product). The
permutation null is the exact distribution of the statistic for these sample sizes, so no
approximation (Gaussian or chi-squared) of it is involved.

A window drifts when p < 0.05 *and* MMD² ≥ ``MIN_SCORE`` (0.02). No "reference mean ± 3σ
over chunks" threshold is needed: that guard exists because a test on all rows of a large
window finds any trivia significant, but here the window is sampled down to at most 256
rows whatever its size, so the test's power stays the same from small windows to large
ones. The floor on the score is there for another reason: a network's embeddings of the
rows it was fitted on are never quite those of new rows (the generalisation gap), so a
reference taken on training rows makes clean traffic "significant" by the test alone. On
small MNIST CNNs (the demo's, one epoch on 3,000 digits, up to one overfit 12 epochs on
1,000), clean held-out digits against a training-row reference give MMD² 0.002-0.012
(p often < 0.05), against a held-out reference below 0.004; rotated digits 0.07-0.12,
inverted ones 1.0-1.4. With the median-heuristic bandwidth the kernel lies in [0, 1] and
MMD² in [0, 2] for every model, so one floor means much the same everywhere, as the 0.1
distance does for single features. Writers take held-out rows where they have them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lepton.sketch.reference import project

PERMUTATIONS = 500
P_VALUE = 0.05
MIN_SCORE = 0.02  # MMD² below this is the generalisation gap, not drift (module docstring)
ROWS = 256
MIN_ROWS = 10
NEEDS_INPUTS = "embedding drift needs inputs kept: serve with --log-inputs"
NO_REFERENCE = ("the reference has no embeddings (image and text models get them from "
                "lepton train or fit; retrain or re-profile the model)")


def rbf(a: np.ndarray, b: np.ndarray, bandwidth: float) -> np.ndarray:
    """``exp(-|a_i - b_j|² / (2 σ²))`` for every pair."""
    d2 = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2 * a @ b.T
    return np.exp(-np.maximum(d2, 0.0) / (2 * bandwidth ** 2))


def _unbiased(kernel: np.ndarray, first: np.ndarray, n: int, m: int) -> np.ndarray:
    """MMD² (unbiased) for each row of ``first`` (P, n + m): 1 where a row is in the first
    sample. The diagonal of an RBF kernel is 1, so the within-sample sums drop n and m."""
    second = 1.0 - first
    kf = first @ kernel
    sxx = (kf * first).sum(1)
    sxy = (kf * second).sum(1)
    syy = kernel.sum() - sxx - 2 * sxy
    return (sxx - n) / (n * (n - 1)) + (syy - m) / (m * (m - 1)) - 2 * sxy / (n * m)


def mmd_test(x: np.ndarray, y: np.ndarray, bandwidth: float, *,
             permutations: int = PERMUTATIONS, seed: int = 0) -> tuple[float, float]:
    """(unbiased MMD² of samples ``x`` and ``y``, permutation p-value)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, m = len(x), len(y)
    pooled = np.concatenate([x, y])
    kernel = rbf(pooled, pooled, bandwidth)
    observed = np.zeros((1, n + m))
    observed[0, :n] = 1.0
    score = float(_unbiased(kernel, observed, n, m)[0])
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((permutations, n + m)), axis=1)
    first = (order < n).astype(np.float64)  # the first n of each shuffle form sample one
    null = _unbiased(kernel, first, n, m)
    p_value = float((1 + np.sum(null >= score - 1e-12)) / (1 + permutations))
    return score, p_value


def embedding_drift(part: dict[str, Any] | None, vectors: np.ndarray | None, *,
                    seed: int = 0) -> dict[str, Any]:
    """One window's result (``feature: "embedding"``, ``method: "mmd"``) from its
    penultimate-layer vectors; ``status`` says why when there is nothing to compare."""
    base: dict[str, Any] = {"feature": "embedding", "kind": "embedding"}
    if not part:
        return {**base, "method": None, "drifted": False, "status": NO_REFERENCE}
    if not {"projection", "sample", "bandwidth", "dim"} <= set(part):
        return {**base, "method": None, "drifted": False,
                "status": "the reference's embeddings predate MMD (no projection or "
                          "bandwidth): write the reference again"}
    if vectors is None or len(vectors) == 0:
        return {**base, "method": None, "drifted": False, "rows": 0, "status": NEEDS_INPUTS}
    if len(vectors) < MIN_ROWS:
        return {**base, "method": None, "drifted": False, "rows": len(vectors),
                "status": f"too few kept inputs for embedding drift ({len(vectors)} < "
                          f"{MIN_ROWS})"}
    vectors = np.asarray(vectors)
    if len(vectors) > ROWS:
        vectors = vectors[np.sort(np.random.default_rng(seed).choice(len(vectors), ROWS,
                                                                    replace=False))]
    window = project(vectors, part)
    reference = np.asarray(part["sample"], dtype=np.float64)
    score, p_value = mmd_test(reference, window, float(part["bandwidth"]), seed=seed)
    return {**base, "method": "mmd", "score": score, "p_value": p_value,
            "threshold": P_VALUE, "min_score": MIN_SCORE,
            "drifted": bool(p_value < P_VALUE and score >= MIN_SCORE), "rows": len(window),
            "reference_rows": len(reference), "permutations": PERMUTATIONS,
            "bandwidth": float(part["bandwidth"])}


def load_embedder(path: Any) -> Any:
    """The registered version's network on the torch runtime (with its preprocessing), or
    the sentence that says why embedding drift cannot be computed for it."""
    from lepton.artifact.predictor import Predictor

    try:
        return Predictor.from_artifact(path, runtime="torch")
    except Exception as exc:  # noqa: BLE001 - one part of the report, not the whole monitor
        return f"embedding drift needs the model on the torch runtime: {exc}"


def window_vectors(predictor: Any, rows: list[dict[str, Any]], *,
                   seed: int = 0) -> np.ndarray | str | None:
    """Penultimate-layer vectors of a sample of the rows that kept their inputs (None when
    none did; a sentence when the model gives none)."""
    from lepton.core.embeddings import penultimate, sample_rows
    from lepton.serve.sketches import split_samples

    kept = [r for r in rows if r.get("input_sample") is not None]
    if not kept:
        return None
    kept = [kept[i] for i in sample_rows(len(kept), ROWS, seed)]
    tensors, records = split_samples(kept)
    model = predictor.model
    ids = list(model.expects_token_ids()) if hasattr(model, "expects_token_ids") else []
    x: Any
    if tensors:  # the V2 infer route logs model-ready tensors: token ids come back as floats
        typed = [v.astype(np.int64 if i < len(ids) and ids[i] else np.float32)
                 for i, v in enumerate(tensors.values())]
        x = dict(zip(tensors, typed)) if len(typed) > 1 else \
            typed[0] if predictor.pipeline is None else predictor.prepare(typed[0])
    else:
        x = predictor.prepare(records)
    vectors = penultimate(model, x, rows=ROWS, seed=seed)
    if vectors is None:
        return "the model has no dense head whose input is a vector: no embedding drift"
    return vectors


def window_embedding_drift(part: dict[str, Any] | None, embedder: Any,
                           rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``embedding_drift`` of one window of log rows (what ``monitor`` stores)."""
    if not part:
        return embedding_drift(None, None)
    if isinstance(embedder, str):
        return {"feature": "embedding", "kind": "embedding", "method": None,
                "drifted": False, "status": embedder}
    try:
        vectors = window_vectors(embedder, rows)
    except Exception as exc:  # noqa: BLE001 - kept inputs the model cannot take
        vectors = f"the kept inputs could not be embedded: {exc}"
    if isinstance(vectors, str):
        return {"feature": "embedding", "kind": "embedding", "method": None,
                "drifted": False, "status": vectors}
    return embedding_drift(part, vectors)
