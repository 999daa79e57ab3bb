"""write_report: one call from a model saved from plain arrays to its report."""

from __future__ import annotations

import json

import numpy as np

from lepton.core import Sequential, layers
from lepton.evaluate import write_report


def test_write_report_for_an_array_model(tmp_path):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    model = Sequential([layers.Dense(32, activation="relu", input_shape=(64,)),
                        layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x[:1400], y[:1400], epochs=3, batch_size=64, verbose=0,
                     validation_data=(x[1400:1600], y[1400:1600]))
    model.save(tmp_path / "m", metadata={"task": "multiclass", "labels": list(range(10))})
    path = write_report(tmp_path / "m", x[1600:], y[1600:], hist, [str(i) for i in range(10)])
    assert path == tmp_path / "m" / "report.html"
    html = path.read_text()
    assert html.count("data:image/png;base64,") == 5  # curves, confusion, ROC, PR, calibration
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["n"] == len(y) - 1600 and metrics["accuracy"] > 0.4
