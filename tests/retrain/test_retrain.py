"""``lepton retrain`` on a real trained model: production traffic moves into a region where
the rule differs; feedback labels come back; a challenger that learns it wins on the
production holdout without losing the original test and is promoted; a challenger trained on
corrupted labels is not, and the record says why; the guards refuse loops and changed data."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from lepton.errors import ConflictError, DataError
from tests.monitor.conftest import log_records


def _original(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(0, 0.05, size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": (x1 > 0).astype(int)})


def _production(n: int, seed: int) -> pd.DataFrame:
    """x2 moved to 6; there the class boundary is x1 > 1.5 (x1 - x2/4 > 0 fits both)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(1, 1.5, size=n), rng.normal(6, 0.05, size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": (x1 > 1.5).astype(int)})


@pytest.fixture
def champion(tmp_path, store):
    from lepton.registry import Registry
    from lepton.train.run import train

    csv = tmp_path / "original.csv"
    _original(1500, 0).to_csv(csv, index=False)
    result = train(csv, "y", model="linear", out=tmp_path / "m", name="shift", register=True)
    Registry(store).promote("shift", result.registered["version"], "production")
    return csv, Registry(store).resolve("shift@production")


def _feedback(store, record, frame, labels, prefix):
    log_records(store, record, frame.drop(columns=["y"]), start=time.time() - 50,
                prefix=prefix, step=0.01, labels=labels)


def test_a_better_challenger_is_promoted(champion, store):
    from lepton.monitor import monitor
    from lepton.registry import Registry
    from lepton.retrain import retrain
    from lepton.store._monitor import list_decisions

    csv, record = champion
    prod = _production(600, 1)
    _feedback(store, record, prod, prod["y"], "p")
    drift = monitor("shift", store=store)["windows"][0]["drift"]
    assert "x2" in drift["drifted"]
    decision = retrain("shift", data=csv, store=store, trigger="drift",
                       evidence={"drifted": drift["drifted"]}, resamples=1000)
    assert decision["promoted"], decision["reason"]
    gain = decision["comparison"]["production_holdout"]
    assert gain["low"] >= 0.5 and gain["resamples"] == 1000
    assert decision["comparison"]["original_test"]["difference"] >= -0.5
    assert Registry(store).resolve("shift@production")["version"] == \
        decision["challenger_version"]
    assert Registry(store).history("shift", "production")[-1]["reason"].startswith("retrain")
    stored = list_decisions(store, "shift")
    assert stored[-1]["promoted"] and stored[-1]["evidence"] == {"drifted": drift["drifted"]}
    assert stored[-1]["data"]["digest"] and stored[-1]["data"]["production_rows"] == 600
    # guard: within the cooldown nothing runs again, and that is recorded too
    again = retrain("shift", data=csv, store=store, trigger="feedback")
    assert not again["promoted"] and "cooldown" in again["reason"]


def test_a_challenger_on_corrupted_labels_is_not_promoted(champion, store):
    from lepton.registry import Registry
    from lepton.retrain import retrain

    csv, record = champion
    prod = _production(600, 2)
    noise = np.random.default_rng(3).integers(0, 2, size=len(prod))
    _feedback(store, record, prod, noise, "n")
    decision = retrain("shift", data=csv, store=store, resamples=1000)
    assert not decision["promoted"] and "not sure" in decision["reason"]
    assert decision["comparison"]["production_holdout"]["low"] < 0.5
    assert Registry(store).resolve("shift@production")["version"] == record["version"]


def test_inputs_not_kept_and_data_changed_are_refused(champion, store, tmp_path):
    from lepton.retrain import retrain

    csv, record = champion
    store.log_predictions([{"id": "q1", "model": "shift", "version": record["version"],
                            "outputs": {"label": 1}}])
    store.add_feedback("q1", label=1)
    with pytest.raises(DataError, match="--log-inputs"):
        retrain("shift", data=csv, store=store)
    changed = tmp_path / "changed.csv"
    _original(1500, 9).to_csv(changed, index=False)
    with pytest.raises(ConflictError, match="allow-data-change"):
        retrain("shift", data=changed, store=store)


def test_paired_bootstrap_and_mcnemar():
    from lepton.retrain import mcnemar, paired_bootstrap

    rng = np.random.default_rng(0)
    a = rng.random(2000) < 0.80
    b = a | (rng.random(2000) < 0.25)  # the challenger fixes a quarter of the misses
    ci = paired_bootstrap(a, b, resamples=1000)
    assert 3.0 < ci["low"] < ci["difference"] < ci["high"]
    assert mcnemar(a, b)["p_value"] < 1e-6 and mcnemar(a, a)["p_value"] == 1.0
