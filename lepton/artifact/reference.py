"""The artifact's reference: training-time statistics of its inputs and outputs.

Drift monitoring compares live traffic with this reference, so it is written with the model
and travels with it. The format is a plain JSON sketch per tensor, small whatever the data
size: ``{"rows": N, "inputs": {name: sketch}, "outputs": {name: sketch}}`` where a sketch
holds, per feature (the last axis of a 2-D tensor; a whole tensor counts as one feature), the
decile ``edges`` and the share of rows in each bin (``fractions``), plus mean and std.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lepton.errors import ArtifactError

BINS = 10


def sketch(values: Any, bins: int = BINS) -> dict[str, Any]:
    """Quantile-bin sketch of one tensor (rows first); NaN and inf are left out."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 or len(array) == 0:
        raise ArtifactError("A reference needs at least one row", received=array.shape)
    columns = array.reshape(len(array), -1) if array.ndim == 2 else array.reshape(-1, 1)
    features: list[dict[str, Any]] = []
    for column in columns.T:
        finite = column[np.isfinite(column)]
        if finite.size == 0:
            features.append({"edges": [], "fractions": [], "mean": None, "std": None})
            continue
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)))
        counts = np.histogram(finite, bins=edges)[0] if len(edges) > 1 else np.array([finite.size])
        features.append({"edges": edges.tolist(),
                         "fractions": (counts / finite.size).tolist(),
                         "mean": float(finite.mean()), "std": float(finite.std())})
    return {"features": features}


def profile(inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    """A reference from named training inputs and the model's outputs on them."""
    rows = {len(np.asarray(v)) for v in [*inputs.values(), *outputs.values()]}
    if len(rows) != 1:
        raise ArtifactError("Reference tensors must have the same number of rows",
                            received=sorted(rows))
    return {"rows": rows.pop(), "inputs": {k: sketch(v) for k, v in inputs.items()},
            "outputs": {k: sketch(v) for k, v in outputs.items()}}


def check_reference(reference: Any) -> dict[str, Any]:
    """Refuse a reference that later stages could not read."""
    if not isinstance(reference, dict) or not isinstance(reference.get("inputs"), dict) or \
            not isinstance(reference.get("outputs"), dict):
        raise ArtifactError("A reference holds sketches of inputs and outputs",
                            expected='{"rows": N, "inputs": {...}, "outputs": {...}}',
                            received=repr(reference)[:120],
                            fix="build it with lepton.artifact.reference.profile(...)")
    rows = reference.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise ArtifactError("A reference's 'rows' is a positive int", received=repr(rows))
    for name, item in [*reference["inputs"].items(), *reference["outputs"].items()]:
        features = item.get("features") if isinstance(item, dict) else None
        if not isinstance(features, list) or not all(_feature_ok(f) for f in features):
            raise ArtifactError(f"The reference sketch of '{name}' is malformed",
                                expected='{"features": [{"edges", "fractions", "mean", "std"}]}',
                                received=repr(item)[:120])
    return reference


def _feature_ok(feature: Any) -> bool:
    if not isinstance(feature, dict):
        return False
    edges, fractions = feature.get("edges"), feature.get("fractions")
    return (isinstance(edges, list) and isinstance(fractions, list)
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in edges + fractions)
            and (len(fractions) == max(len(edges) - 1, 0) or len(edges) == len(fractions) == 1))
