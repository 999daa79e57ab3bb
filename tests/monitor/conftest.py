"""Fixtures for the monitor and retrain suites: a real SQLite store in a temporary
workspace, and a small real table model (scikit-learn's breast-cancer data as a CSV) trained
by ``lepton train`` and registered, so its artifact carries the training reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    home = tmp_path / "ws"
    monkeypatch.setenv("LEPTON_HOME", str(home))
    monkeypatch.setenv("LEPTON_DB_URL", f"sqlite:///{home / 'lepton.db'}")
    monkeypatch.setenv("LEPTON_USER", "tester")
    monkeypatch.delenv("LEPTON_LOG_KEY", raising=False)
    return home


@pytest.fixture
def store(workspace):
    from lepton.store import Store

    with Store.open() as opened:
        yield opened


def cancer_frame() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, list(range(8)) + [30]].copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame


@pytest.fixture
def table_model(tmp_path, store):
    """(csv path, registered version record, frame) of a linear model on 8 real features."""
    from lepton.registry import Registry
    from lepton.train.run import train

    frame = cancer_frame()
    csv = tmp_path / "cancer.csv"
    frame.to_csv(csv, index=False)
    result = train(csv, "target", model="linear", out=tmp_path / "model", name="cancer",
                   register=True)
    assert result.registered is not None
    registry = Registry(store)
    registry.promote("cancer", result.registered["version"], "production")
    return csv, registry.resolve("cancer@production"), frame


def log_records(store, record, frame: pd.DataFrame, *, start: float, prefix: str,
                labels=None, step: float = 1.0) -> list[str]:
    """Log ``frame``'s rows as predictions of ``record`` (inputs kept, as --log-inputs does),
    made by the model itself so the outputs are real; returns the prediction ids."""
    from lepton.artifact.predictor import Predictor

    predictor = Predictor.from_artifact(record["path"])
    features = frame[predictor.pipeline.input_columns]
    results = predictor.predict_records(features.to_dict("records"))
    ids = [f"{prefix}-{i:05d}" for i in range(len(frame))]
    rows = [{"id": pid, "model": record["name"], "version": record["version"],
             "created_at": start + i * step, "latency_ms": 1.0 + (i % 7),
             "outputs": res, "input_sample": rec}
            for i, (pid, res, rec) in enumerate(zip(ids, results,
                                                   features.to_dict("records")))]
    store.log_predictions(rows)
    if labels is not None:
        for pid, label in zip(ids, np.asarray(labels).tolist()):
            store.add_feedback(pid, label=label)
    return ids
