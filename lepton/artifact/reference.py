"""``lepton train``'s reference profile: a sample of the training data through the trained
model, sketched by ``lepton.sketch`` (which holds the format and the statistics).

Image and text models also get penultimate-layer embeddings (the monitor's MMD test), taken
on the validation rows when there are enough: they were held out from fitting, like live
traffic, so an overfit network's tighter embeddings of its own training rows cannot make
clean traffic look drifted."""

from __future__ import annotations

from typing import Any

import numpy as np

from lepton.sketch.reference import check_reference, reference_for


def from_training(prepared: Any, net: Any, data: Any, metrics: dict | None,
                  rows: int = 20_000) -> dict[str, Any]:
    """``lepton train``'s reference: a sample of the training inputs (and of the raw table
    for tables and text) with the model's outputs on them and the validation metrics."""
    n = len(prepared.y_train)
    idx = np.sort(np.random.default_rng(0).permutation(n)[:rows])
    x = (prepared.dense_train[idx] if prepared.dense_train is not None
         else prepared.train_read(idx))
    outputs = np.asarray(net.predict(x, batch_size=1024, verbose=0))
    frame = None
    if prepared.kind in ("tabular", "text"):
        from lepton.data import read_table

        table = read_table(data)
        columns = [c for c in prepared.pipeline.input_columns if c in table.columns]
        frame = table[columns].sample(n=min(rows, len(table)), random_state=0)
    input_name = (list(getattr(net, "input_names", None) or []) or ["input_1"])[0]
    output_name = (list(getattr(net, "output_names", None) or []) or ["output_1"])[0]
    return reference_for(x, outputs, input_name=input_name, output_name=output_name,
                         task=prepared.task, labels=prepared.labels, frame=frame,
                         metrics=metrics, embeddings=embeddings_of(prepared, net, x))


def embeddings_of(prepared: Any, net: Any, x: np.ndarray, rows: int = 256) -> Any:
    """Penultimate-layer vectors of image and text models (None for tables or a model
    without a dense head): validation rows when there are at least ``rows``."""
    if prepared.kind not in ("image", "text"):
        return None
    from lepton.core.embeddings import penultimate

    x_val = getattr(prepared, "x_val", None)
    source = x_val if x_val is not None and len(x_val) >= rows else x
    return penultimate(net, source, rows=rows)


def safe_reference(prepared: Any, net: Any, data: Any, metrics: dict | None,
                   log: Any = None) -> dict[str, Any] | None:
    """``from_training``, but a failure to profile never fails the training run: the
    artifact is then written without a reference (``lepton monitor --reference`` makes one)."""
    try:
        return check_reference(from_training(prepared, net, data, metrics))
    except Exception as exc:  # noqa: BLE001 - monitoring is optional, the model is not
        if log is not None:
            log(f"no reference profile written: {exc}")
        return None
