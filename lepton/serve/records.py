"""The convenience route's codec: ``{"inputs": [...]}`` in, one readable record per row out.

Arrays (one nested list per row) are checked against the model's input signature. Raw
records (CSV-like rows, image bytes, text) go through the artifact's saved preprocessing via
``lepton.artifact.predictor.Predictor`` when the model has one. Outputs become a label, the class
probabilities by name, or a value, using the artifact metadata (``task``, ``labels``,
``threshold``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lepton.errors import ShapeError
from lepton.serve.errors import ProtocolError
from lepton.serve.jsonbody import parse_json
from lepton.serve.protocol import DATATYPES, TensorSpec

MAX_RECORDS = 4096


def decode_records(body: bytes) -> list[Any]:
    """The ``inputs`` list of a v1 request."""
    doc = parse_json(body)
    records = doc.get("inputs") if isinstance(doc, dict) else None
    if not isinstance(records, list) or not records:
        raise ProtocolError("The request needs a non-empty 'inputs' list",
                            expected='{"inputs": [record, ...]}',
                            received=type(records).__name__ if records is not None else "none")
    if len(records) > MAX_RECORDS:
        raise ProtocolError("Too many records in one request", expected=f"<= {MAX_RECORDS}",
                            received=len(records))
    return records


def records_to_arrays(records: list[Any], inputs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Rows of nested lists -> the model's input arrays (single-input models)."""
    if len(inputs) != 1:
        raise ProtocolError("This model has several inputs; use the V2 infer route",
                            received=f"{len(inputs)} inputs")
    spec = inputs[0]
    dtype = DATATYPES[spec.datatype]
    try:
        with np.errstate(over="ignore"):  # 1e39 as FP32 is inf: the runner refuses it
            array = np.asarray(records, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise ShapeError("The inputs are not arrays of numbers of one shape",
                         expected=f"{len(records)} rows of shape {spec.shape[1:]}",
                         received="ragged or non-numeric data",
                         fix="send {\"inputs\": [row, ...]} with one nested list per row") from None
    expected = spec.shape[1:]
    got = list(array.shape[1:])
    if len(got) != len(expected) or any(
            e not in (-1, g) for g, e in zip(got, expected, strict=True)):
        raise ShapeError("Each input row has the wrong shape", expected=expected, received=got)
    return {spec.name: array}


def postprocess(outputs: dict[str, np.ndarray], metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """Model outputs -> one record per row: label + probabilities, or value."""
    out = np.asarray(next(iter(outputs.values())), dtype=np.float64)
    rows = out.reshape(out.shape[0], -1)
    labels = metadata.get("labels")
    task = metadata.get("task")
    if task == "regression" or (task is None and rows.shape[1] == 1 and not labels):
        return [{"value": r[0].item() if r.size == 1 else r.tolist()} for r in rows]
    if rows.shape[1] == 1:  # binary, one sigmoid output
        cut = float(metadata.get("threshold", 0.5))
        p1 = rows[:, 0]
        if p1.min() < 0 or p1.max() > 1:
            p1 = 1.0 / (1.0 + np.exp(-p1))
        names = labels if labels and len(labels) == 2 else [0, 1]
        return [{"label": names[int(p >= cut)],
                 "probabilities": {str(names[0]): 1.0 - p.item(), str(names[1]): p.item()}}
                for p in p1]
    probs = rows
    if probs.min() < 0 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        shifted = np.exp(rows - rows.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
    names = labels if labels and len(labels) == probs.shape[1] else list(range(probs.shape[1]))
    threshold = metadata.get("threshold")
    results = []
    for p in probs:
        best = int(p.argmax())
        if threshold is not None and len(names) == 2:
            best = int(p[1] >= float(threshold))
        probabilities = {str(n): v for n, v in zip(names, p.tolist(), strict=True)}
        results.append({"label": names[best], "probabilities": probabilities})
    return results
