"""Folding live traffic onto the reference's bins: what a window of requests keeps.

A window's values are counted on the *same* bins the training-time reference holds
(``lepton.sketch.reference``), plus n, sum, sum of squares, min and max, so windows merge by
adding counts and the server sketches traffic without keeping any raw input. The monitor
compares these folds with the reference; the server writes them with the prediction log.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from lepton.errors import ArtifactError

WIDE = 256  # 2-D tensors wider than this (tf-idf, pixels) are sketched by row summaries
_TOKEN = re.compile(r"\w+")


# -- features: tensor -> (names, rows x k float matrix) ----------------------------------
def feature_matrix(values: Any) -> tuple[list[str], np.ndarray]:
    """The monitored features of one tensor (rows first) and their names."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        raise ArtifactError("A reference needs at least one row", received=array.shape)
    if array.ndim == 1:
        return ["value"], array.reshape(-1, 1)
    if array.ndim == 2:
        if array.shape[1] <= WIDE:
            return [str(i) for i in range(array.shape[1])], array
        return ["row_mean", "row_norm", "row_nonzero"], np.stack(
            [array.mean(1), np.sqrt((array ** 2).sum(1)), (array != 0).sum(1)], axis=1)
    channels_last = array.shape[-1] <= 4
    flat = (array.reshape(len(array), -1, array.shape[-1]) if channels_last
            else array.reshape(len(array), array.shape[1], -1).transpose(0, 2, 1))
    means, stds = flat.mean(1), flat.std(1)
    names = [f"channel{c}_{s}" for s in ("mean", "std") for c in range(flat.shape[2])]
    return names, np.concatenate([means, stds], axis=1)


def tokens(text: Any) -> list[str]:
    return _TOKEN.findall(str(text).lower())


def to_float(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# -- folding live values into the reference's bins (mergeable) ----------------------------
def fold(feature: dict[str, Any], values: Any) -> dict[str, Any]:
    """Counts of ``values`` on ``feature``'s bins plus n, sum, sum of squares, min, max and
    missing: what a window of traffic keeps of one feature. Windows merge by ``merge``."""
    kind = feature.get("kind", "numeric")
    if kind == "text":
        items = list(values)
        return {"token_length": fold(feature["token_length"],
                                     [len(tokens(v)) for v in items]),
                "first_token": fold(feature["first_token"],
                                    [(tokens(v) or [""])[0] for v in items])}
    if kind == "categorical":
        index = {v: i for i, v in enumerate(feature["values"])}
        counts = np.zeros(len(index) + 1, dtype=np.int64)
        for v in values:
            counts[index.get("" if v is None else str(v), len(index))] += 1
        return {"counts": counts.tolist(), "n": int(counts.sum()), "missing": 0}
    column = np.asarray([to_float(v) for v in values] if isinstance(values, list)
                        else values, dtype=np.float64).reshape(-1)
    finite = column[np.isfinite(column)]
    if kind == "discrete":
        known = np.asarray(feature["values"], dtype=np.float64)
        pos = np.clip(np.searchsorted(known, finite), 0, len(known) - 1)
        idx = np.where(known[pos] == finite, pos, len(known))
        counts = np.bincount(idx, minlength=len(known) + 1)
    elif "bins" in feature:
        edges = np.asarray(feature["bins"], dtype=np.float64)
        counts = np.bincount(np.searchsorted(edges, finite, side="right"),
                             minlength=len(edges) + 1)
    else:
        counts = np.array([finite.size])
    out = {"counts": counts.tolist(), "n": int(finite.size),
           "missing": int(column.size - finite.size), "sum": float(finite.sum()),
           "sumsq": float((finite ** 2).sum())}
    if finite.size:
        out.update(min=float(finite.min()), max=float(finite.max()))
    return out


def merge(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """Two folds of one feature -> the fold of both windows."""
    if a is None:
        return b
    if "token_length" in b:
        return {k: merge(a[k], b[k]) for k in ("token_length", "first_token")}
    out = {"counts": (np.asarray(a["counts"]) + np.asarray(b["counts"])).tolist()}
    for key in ("n", "missing", "sum", "sumsq"):
        if key in a or key in b:
            out[key] = a.get(key, 0) + b.get(key, 0)
    for key, pick in (("min", min), ("max", max)):
        present = [d[key] for d in (a, b) if key in d]
        if present:
            out[key] = pick(present)
    return out


def fold_tensor(sketch_: dict[str, Any], values: Any) -> list[dict[str, Any]]:
    """One fold per feature of a tensor sketched by ``sketch``."""
    _, matrix = feature_matrix(values)
    return [fold(f, c) for f, c in zip(sketch_["features"], matrix.T, strict=False)]


def fold_inputs(reference: dict[str, Any], inputs: Any) -> dict[str, dict[str, Any]]:
    """A request's (or window's) inputs folded per monitored feature, named as the monitor
    names them: ``tensor.feature`` for tensors (a dict of arrays), the column name for raw
    records (a list of dicts, or of strings for a one-column text model)."""
    out: dict[str, dict[str, Any]] = {}
    if isinstance(inputs, dict):
        for name, sketch_ in (reference.get("inputs") or {}).items():
            if name in inputs and len(inputs[name]):
                names = sketch_.get("names") or [str(i) for i in range(len(sketch_["features"]))]
                for fname, folded in zip(names, fold_tensor(sketch_, inputs[name]), strict=False):
                    out[f"{name}.{fname}"] = folded
        return out
    columns = reference.get("columns") or {}
    records = list(inputs)
    if not columns or not records:
        return out
    if not isinstance(records[0], dict):
        if len(columns) != 1:
            return out
        records = [{next(iter(columns)): r} for r in records]
    for name, sketch_ in columns.items():
        out[name] = fold(sketch_, [r.get(name) for r in records])
    return out


def merge_folds(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict:
    """Two windows' ``fold_inputs`` -> their union (counts summed feature by feature)."""
    out = dict(a)
    for name, folded in b.items():
        out[name] = merge(out.get(name), folded)
    return out


def feature_sketches(reference: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every monitored feature's reference sketch by the name ``fold_inputs`` gives it."""
    out = {}
    for name, sketch_ in (reference.get("inputs") or {}).items():
        names = sketch_.get("names") or [str(i) for i in range(len(sketch_["features"]))]
        for fname, feature in zip(names, sketch_["features"], strict=False):
            out[f"{name}.{fname}"] = feature
    out.update(reference.get("columns") or {})
    return out
