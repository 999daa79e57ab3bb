"""The artifact's reference: training-time statistics of its inputs and outputs.

Drift monitoring compares live traffic with this reference, so it is written with the model
and travels with it. The format is a plain JSON sketch per tensor, small whatever the data
size: ``{"rows": N, "inputs": {name: sketch}, "outputs": {name: sketch}}`` where a sketch
holds, per feature (the last axis of a 2-D tensor; per-channel mean and std of each image for
a 3-D+ tensor; a whole 1-D tensor counts as one feature), the decile ``edges`` and the share
of rows in each bin (``fractions``), plus mean and std.

Each feature also carries a *mergeable* histogram: ``bins`` (up to 31 quantile edges, so 30
bins plus two tails) with the training ``counts`` in each, and ``chunk_counts``, the same
counts for 10 consecutive chunks of the training rows (the monitor derives its
"reference mean ± 3σ over chunks" thresholds from them without the training data). A
window of live traffic is folded into counts on the *same* bins (``fold``), so windows add
up by summing counts, and the server can sketch traffic without keeping any raw input.
Features with at most ``DISCRETE`` distinct values (one-hot columns, small integers) and
categorical columns keep their ``values`` and counts instead (the last count is "other").

Optional top-level parts: ``columns`` (raw table columns by name: numeric, categorical or
text (token length and vocabulary)), ``predictions`` (the distribution of predicted classes
or values), ``metrics`` (validation metrics), ``embeddings`` (below) and ``model`` (which
version it describes).

``embeddings`` (image and text models; what the monitor's MMD test compares with):
``{"rows": n, "dim": d, "dims": k, "projection": {"method", "seed", "checksum"},
"bandwidth": sigma, "sample": [[k floats] * n]}``: a seeded sample of at most 256
penultimate-layer vectors (the input of the classifier head, ``lepton.core.embeddings``)
projected from ``d`` to ``k <= 32`` dimensions. The projection is not stored: it is
regenerated from ``{seed, d, k}`` (``projection``: the Q of a QR of a seeded standard normal
``(d, k)`` matrix, ``method: "gaussian-qr"``; ``"identity"`` when ``d <= 32``) and checked
against ``checksum`` (the sum of its absolute values), so a NumPy that drew other numbers is
caught instead of comparing different projections. A random orthonormal projection keeps
pairwise distances on average in every direction (a PCA would keep only the directions the
training data varies in, and a shift can move along others). ``bandwidth`` is the median
pairwise distance of the projected sample (the median heuristic): the RBF kernel
``exp(-|x - y|^2 / (2 sigma^2))`` the monitor uses, fixed at training time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lepton.errors import ArtifactError
from lepton.sketch.folding import feature_matrix, fold, to_float, tokens

BINS = 10
HIST_BINS = 30
CHUNKS = 10
DISCRETE = 10
TOP_VALUES = 50
EMBED_ROWS = 256
EMBED_DIMS = 32


# -- one feature ---------------------------------------------------------------------------
def _numeric(column: np.ndarray, bins: int) -> dict[str, Any]:
    finite = column[np.isfinite(column)]
    missing = int(column.size - finite.size)
    if finite.size == 0:
        return {"kind": "numeric", "edges": [], "fractions": [], "mean": None, "std": None,
                "count": 0, "missing": missing}
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)))
    counts = np.histogram(finite, bins=edges)[0] if len(edges) > 1 else np.array([finite.size])
    out = {"kind": "numeric", "edges": edges.tolist(), "fractions": (counts / finite.size).tolist(),
           "mean": float(finite.mean()), "std": float(finite.std()), "count": int(finite.size),
           "missing": missing, "min": float(finite.min()), "max": float(finite.max())}
    uniques = np.unique(finite)
    if len(uniques) <= DISCRETE:
        out.update(kind="discrete", values=uniques.tolist())
    else:
        out["bins"] = np.unique(np.quantile(finite, np.linspace(0, 1, HIST_BINS + 1))).tolist()
    out["counts"] = fold(out, column)["counts"]
    chunks = np.array_split(column, min(CHUNKS, len(column)))
    out["chunk_counts"] = [fold(out, c)["counts"] for c in chunks]
    out["chunk_rows"] = int(len(chunks[0]))
    return out


def _categorical(values: Any) -> dict[str, Any]:
    items = ["" if v is None else str(v) for v in values]
    missing = sum(1 for v in values if v is None or (isinstance(v, float) and math.isnan(v)))
    uniq, counts = np.unique(np.asarray(items, dtype=object).astype(str), return_counts=True)
    top = [str(u) for u in uniq[np.argsort(-counts, kind="stable")][:TOP_VALUES]]
    out: dict[str, Any] = {"kind": "categorical", "edges": [], "fractions": [], "mean": None,
                           "std": None, "count": len(items), "missing": int(missing),
                           "values": top}
    out["counts"] = fold(out, items)["counts"]
    chunks = np.array_split(np.asarray(items, dtype=object), min(CHUNKS, len(items)))
    out["chunk_counts"] = [fold(out, list(c))["counts"] for c in chunks]
    out["chunk_rows"] = int(len(chunks[0]))
    return out


def _text(values: Any) -> dict[str, Any]:
    """Text: token length as a numeric sketch, the most frequent tokens as a categorical one
    (one token per row: its first), and vocabulary size."""
    split = [tokens(v) for v in values]
    lengths = np.array([len(t) for t in split], dtype=np.float64)
    vocab = {t for row in split for t in row}
    sketch_ = {"kind": "text", "token_length": _numeric(lengths, BINS),
               "first_token": _categorical([row[0] if row else "" for row in split]),
               "vocabulary": len(vocab), "edges": [], "fractions": [], "mean": None,
               "std": None, "count": len(split)}
    return sketch_


def sketch(values: Any, bins: int = BINS) -> dict[str, Any]:
    """Sketch of one tensor (rows first); NaN and inf are counted as missing."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 or len(array) == 0:
        raise ArtifactError("A reference needs at least one row", received=array.shape)
    names, matrix = feature_matrix(array)
    return {"names": names, "features": [_numeric(c, bins) for c in matrix.T]}


def column_sketch(series: Any) -> dict[str, Any]:
    """A raw table column: numeric, categorical (strings, booleans) or text (long strings)."""
    values = list(series)
    numeric = np.asarray([to_float(v) for v in values], dtype=np.float64)
    if np.isfinite(numeric).sum() >= 0.9 * max(len(values), 1):
        return _numeric(numeric, BINS)
    strings = [v for v in values if isinstance(v, str)]
    if strings and np.mean([len(s.split()) for s in strings]) > 3:
        return _text(values)
    return _categorical(values)


# -- the whole reference --------------------------------------------------------------------
def profile(inputs: dict[str, Any], outputs: dict[str, Any], *,
            columns: Any = None, predictions: Any = None, metrics: dict | None = None,
            embeddings: Any = None, labels: list | None = None) -> dict[str, Any]:
    """A reference from named training inputs and the model's outputs on them; optionally
    the raw table (``columns``: a DataFrame), the predicted classes or values, validation
    metrics and a sample of penultimate-layer embeddings."""
    rows = {len(np.asarray(v)) for v in [*inputs.values(), *outputs.values()]}
    if len(rows) != 1:
        raise ArtifactError("Reference tensors must have the same number of rows",
                            received=sorted(rows))
    ref: dict[str, Any] = {"rows": rows.pop(), "inputs": {k: sketch(v) for k, v in inputs.items()},
                           "outputs": {k: sketch(v) for k, v in outputs.items()}}
    if columns is not None:
        ref["columns"] = {str(c): column_sketch(columns[c]) for c in columns.columns}
    if predictions is not None:
        pred = np.asarray(predictions)
        ref["predictions"] = _numeric(pred.astype(np.float64).reshape(-1), BINS)
        if labels is not None:
            ref["predictions"]["labels"] = [str(v) for v in labels]
    if metrics:
        ref["metrics"] = {k: float(v) for k, v in metrics.items()
                          if isinstance(v, (int, float)) and math.isfinite(v)}
    if embeddings is not None:
        ref["embeddings"] = embedding_sketch(embeddings)
    return ref


# -- embeddings (see the module docstring) -------------------------------------------------
def projection(seed: int, dim: int, dims: int) -> np.ndarray:
    """The ``(dim, min(dim, dims))`` projection regenerated from its seed (orthonormal)."""
    if dim <= dims:
        return np.eye(dim)
    gaussian = np.random.default_rng(seed).standard_normal((dim, dims))
    q, r = np.linalg.qr(gaussian)
    return q * np.sign(np.diag(r))  # a unique Q whatever sign the LAPACK picked


def median_bandwidth(sample: np.ndarray) -> float:
    """The median pairwise Euclidean distance (the RBF's sigma; 1.0 for a constant sample)."""
    sq = (sample ** 2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * sample @ sample.T, 0.0)
    upper = np.sqrt(d2[np.triu_indices(len(sample), 1)])
    med = float(np.median(upper)) if upper.size else 0.0
    return med if med > 0 and math.isfinite(med) else 1.0


def project(embeddings: Any, part: dict[str, Any]) -> np.ndarray:
    """Vectors ``(n, d)`` projected as the reference's ``embeddings`` part says."""
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb.reshape(len(emb), -1)
    spec = part["projection"]
    if emb.shape[1] != part["dim"]:
        raise ArtifactError("Embeddings of another width than the reference's",
                            expected=f"{part['dim']} values per row",
                            received=f"{emb.shape[1]}",
                            fix="compute them with the model the reference was written for")
    matrix = projection(int(spec["seed"]), int(part["dim"]), int(part["dims"]))
    if not math.isclose(float(np.abs(matrix).sum()), float(spec["checksum"]), rel_tol=1e-6):
        raise ArtifactError("The reference's embedding projection cannot be regenerated here",
                            expected=f"checksum {spec['checksum']}",
                            received=f"{float(np.abs(matrix).sum())}",
                            fix="rewrite the reference with this NumPy (lepton train again)")
    return emb @ matrix


def embedding_sketch(embeddings: Any, *, rows: int = EMBED_ROWS, dims: int = EMBED_DIMS,
                     seed: int = 0) -> dict[str, Any]:
    """The ``embeddings`` part from penultimate-layer vectors ``(n, d)``."""
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim < 2 or len(emb) < 2 or not np.isfinite(emb).all():
        raise ArtifactError("Reference embeddings are finite vectors, two rows or more",
                            received=f"shape {emb.shape}")
    emb = emb.reshape(len(emb), -1)
    if len(emb) > rows:
        emb = emb[np.sort(np.random.default_rng(seed).choice(len(emb), rows, replace=False))]
    dim = int(emb.shape[1])
    matrix = projection(seed, dim, dims)
    spec = {"method": "identity" if dim <= dims else "gaussian-qr", "seed": int(seed),
            "checksum": float(np.abs(matrix).sum())}
    part = {"rows": len(emb), "dim": dim, "dims": int(matrix.shape[1]), "projection": spec}
    sample = np.asarray([[float(f"{v:.6g}") for v in row] for row in project(emb, part)])
    return {**part, "bandwidth": median_bandwidth(sample), "sample": sample.tolist()}


def reference_for(x: Any, outputs: Any, *, input_name: str, output_name: str,
                  task: str | None, labels: list | None = None, frame: Any = None,
                  metrics: dict | None = None, embeddings: Any = None) -> dict[str, Any]:
    """The reference of a model from its (preprocessed) inputs ``x``, its outputs on them,
    and optionally the raw table ``frame`` those inputs came from and penultimate-layer
    ``embeddings`` (``lepton.core.embeddings.penultimate``) of some of those rows."""
    out = np.asarray(outputs, dtype=np.float64)
    flat = out.reshape(len(out), -1)
    if task == "regression":
        preds = flat[:, 0]
    elif flat.shape[1] == 1:  # one sigmoid (or logit) column; the predictor's rule
        logit = flat.min() < 0 or flat.max() > 1
        preds = (flat[:, 0] > 0 if logit else flat[:, 0] >= 0.5).astype(np.int64)
    else:
        preds = flat.argmax(axis=1)
    return profile({input_name: x}, {output_name: out}, columns=frame, predictions=preds,
                   labels=labels if task != "regression" else None, metrics=metrics,
                   embeddings=embeddings)


def check_reference(reference: Any) -> dict[str, Any]:
    """Refuse a reference that later stages could not read."""
    if not isinstance(reference, dict) or not isinstance(reference.get("inputs"), dict) or \
            not isinstance(reference.get("outputs"), dict):
        raise ArtifactError("A reference holds sketches of inputs and outputs",
                            expected='{"rows": N, "inputs": {...}, "outputs": {...}}',
                            received=repr(reference)[:120],
                            fix="build it with lepton.sketch.profile(...)")
    rows = reference.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise ArtifactError("A reference's 'rows' is a positive int", received=repr(rows))
    for name, item in [*reference["inputs"].items(), *reference["outputs"].items()]:
        features = item.get("features") if isinstance(item, dict) else None
        if not isinstance(features, list) or not all(_feature_ok(f) for f in features):
            raise ArtifactError(f"The reference sketch of '{name}' is malformed",
                                expected='{"features": [{"edges", "fractions", "mean", "std"}]}',
                                received=repr(item)[:120])
    if "embeddings" in reference:
        _check_embeddings(reference["embeddings"])
    return reference


def _check_embeddings(part: Any) -> None:
    ok = isinstance(part, dict) and all(isinstance(part.get(k), int) and part[k] >= 1
                                        for k in ("rows", "dim", "dims"))
    spec = part.get("projection") if ok else None
    sample = part.get("sample") if ok else None
    ok = (ok and isinstance(spec, dict) and spec.get("method") in ("identity", "gaussian-qr")
          and isinstance(spec.get("seed"), int)
          and isinstance(spec.get("checksum"), (int, float))
          and part["dims"] <= part["dim"] and isinstance(part.get("bandwidth"), (int, float))
          and math.isfinite(part["bandwidth"]) and part["bandwidth"] > 0
          and isinstance(sample, list) and len(sample) == part["rows"] >= 2
          and all(isinstance(r, list) and len(r) == part["dims"] for r in sample))
    if ok:
        ok = bool(np.isfinite(np.asarray(sample, dtype=np.float64)).all())
    if not ok:
        raise ArtifactError("The reference's embeddings part is malformed",
                            expected='{"rows", "dim", "dims", "projection": {"method", "seed", '
                                     '"checksum"}, "bandwidth", "sample": [[dims floats]]}',
                            received=repr(part)[:120],
                            fix="write it with lepton.sketch.reference.embedding_sketch")


def _feature_ok(feature: Any) -> bool:
    if not isinstance(feature, dict):
        return False
    edges, fractions = feature.get("edges"), feature.get("fractions")
    return (isinstance(edges, list) and isinstance(fractions, list)
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in edges + fractions)
            and (len(fractions) == max(len(edges) - 1, 0) or len(edges) == len(fractions) == 1))
