"""The prediction log on its own: what each row holds, whatever the model's signature."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import xxhash
from sklearn.datasets import load_iris

from lepton.serve.predlog import PredictionLog
from lepton.store import Store


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'log.db'}", workspace=tmp_path) as store:
        yield store


def test_array_rows_keep_their_outputs_digest_and_sample(store):
    x = load_iris().data.astype(np.float32)
    log = PredictionLog(store, interval_s=60, sample_inputs=True)
    log.add(["a", "b", "c"], "iris", 2, {"x": x[:3]}, {"probs": np.eye(3, dtype=np.float32)}, 1.5)
    log.add(["d"], "iris", 3, {"x": x[3:4]}, {"probs": np.ones((1, 3), np.float32)}, 0.5)
    log.close()
    rows = {p["id"]: p for p in store.list_predictions("iris")}
    assert sorted(rows) == ["a", "b", "c", "d"]
    assert rows["b"]["outputs"] == {"probs": [0.0, 1.0, 0.0]}
    assert rows["b"]["input_digest"] == xxhash.xxh3_128_hexdigest(x[1].tobytes())
    assert rows["b"]["input_sample"] == {"x": pytest.approx(x[1].tolist())}
    assert (rows["c"]["version"], rows["c"]["latency_ms"]) == (2, 1.5)
    assert (rows["d"]["version"], rows["d"]["latency_ms"]) == (3, 0.5)


def test_several_inputs_and_outputs_share_one_digest_and_one_output_record(store):
    ids = np.arange(6, dtype=np.int64).reshape(3, 2)  # a 2-input model, e.g. tokens + mask
    mask = np.ones((3, 2), dtype=np.int64)
    log = PredictionLog(store, interval_s=60)
    log.add(["t0", "t1", "t2"], "text", None, {"mask": mask, "ids": ids},
            {"label": np.array([1, 0, 1]), "score": np.array([0.9, 0.2, 0.7], np.float32)}, 2.0)
    log.flush()
    row = store.get_prediction("t1")
    assert row["outputs"] == {"label": 0, "score": pytest.approx(0.2)}
    assert row["input_digest"] == xxhash.xxh3_128_hexdigest(ids[1].tobytes() + mask[1].tobytes())
    assert row["input_sample"] is None and row["version"] is None
    log.close()


def test_records_and_one_dimensional_inputs_are_logged(store):
    records = [{"sepal_length": 5.1, "species": "setosa"}, {"sepal_length": 6.2}]
    log = PredictionLog(store, interval_s=60, sample_inputs=True)
    log.add(["r0", "r1"], "tab", 1, records, [{"label": "a"}, {"label": "b"}], 3.0)
    log.add(["v0", "v1"], "vec", 1, {"x": np.array([4.0, 5.0])}, {"y": np.array([0.5, 1.5])}, 1.0)
    assert log.flush() == 4
    assert store.get_prediction("r1")["outputs"] == {"label": "b"}
    assert store.get_prediction("r0")["input_sample"] == records[0]
    assert len(store.get_prediction("r0")["input_digest"]) == 32
    assert store.get_prediction("v1")["outputs"] == {"y": 1.5}
    assert store.get_prediction("v1")["input_digest"] == xxhash.xxh3_128_hexdigest(
        np.array(5.0).tobytes())
    log.close()


def test_an_entry_that_cannot_be_digested_is_reported_and_the_rest_is_written(store, caplog):
    log = PredictionLog(store, interval_s=60)
    with caplog.at_level(logging.ERROR, logger="lepton.serve"):
        log.add(["ok1"], "m", 1, {"x": np.zeros((1, 2))}, {"y": np.zeros((1, 1))}, 1.0)
        log.add(["bad"], "m", 1, [object()], [{"y": 1}], 1.0)  # not JSON: no digest
        log.add(["ok2"], "m", 1, {"x": np.ones((1, 2))}, {"y": np.zeros((1, 1))}, 1.0)
    assert log.flush() == 2
    assert "could not log the predictions ['bad']" in caplog.text
    assert store.count_predictions("m") == 2
    log.close()


def test_a_full_buffer_drops_the_oldest_entries_and_counts_them(store):
    dropped = []
    log = PredictionLog(store, interval_s=60, max_pending=2, on_drop=dropped.append)
    for i in range(5):
        log.add([f"p{i}"], "m", 1, {"x": np.full((1, 2), i)}, {"y": np.zeros((1, 1))}, 1.0)
    log.close()
    assert dropped == [1, 1, 1]
    assert [p["id"] for p in store.list_predictions("m")] == ["p3", "p4"]
