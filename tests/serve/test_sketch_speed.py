"""The server's fast fold of traffic (``TensorPlan`` counts added per window, one vectorised
pass over all features of a batch) records exactly what the straightforward per-feature
``fold`` + ``merge`` records: same bins, n, missing, min and max, sums to rounding, on real
tables (breast cancer, digits) and images with NaN/inf, discrete, constant, all-missing and
wide features, and through ``TrafficSketches`` as the prediction log's writer thread runs it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from lepton.serve import sketches as ts
from lepton.sketch.folding import (
    TensorPlan,
    add_counts,
    feature_matrix,
    fold_inputs,
    fold_tensor,
    merge,
    merge_folds,
)
from lepton.sketch.reference import profile, sketch

RNG = np.random.default_rng(0)


def corrupt(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy with 10 % NaN, 3 % +inf and 3 % -inf."""
    x = np.array(x, dtype=np.float64)
    for value, share in ((np.nan, 0.10), (np.inf, 0.03), (-np.inf, 0.03)):
        x[rng.random(x.shape) < share] = value
    return x


def same(got: dict, want: dict) -> None:
    """A fold equal to the straightforward one: exact but for the float sums."""
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key in ("sum", "sumsq"):
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-9)
        elif key in ("token_length", "first_token"):
            same(got[key], value)
        else:
            assert got[key] == value, key


def table_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    cancer = load_breast_cancer().data
    digits = load_digits().data  # 64 pixels, 0..16: constant, discrete and binned features
    mixed = np.column_stack([RNG.normal(size=400), RNG.integers(0, 4, 400),  # discrete
                             np.full(400, np.nan), np.full(400, 3.0),  # no bins; constant
                             RNG.exponential(size=400)])
    live_mixed = np.column_stack([RNG.normal(1, 2, 300), RNG.integers(-1, 6, 300),
                                  RNG.normal(size=300), RNG.integers(2, 5, 300),
                                  RNG.exponential(size=300)])
    wide = RNG.random((300, 300)) * (RNG.random((300, 300)) < 0.2)  # > WIDE: row summaries
    return [("cancer", cancer[:400], cancer[400:]), ("digits", digits[:1200], digits[1200:]),
            ("mixed", mixed, live_mixed), ("wide", wide[:200], wide[200:])]


@pytest.mark.parametrize("case", table_cases(), ids=lambda c: c[0])
@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf - inf in a row mean
def test_plan_equals_fold_and_merge_over_batches(case):
    _, train, live = case
    reference = sketch(train)
    plan = TensorPlan(reference)
    assert plan.ok
    live = corrupt(live, np.random.default_rng(1))
    counts, straight = None, None
    for batch in np.array_split(live, [1, 40, 41, 120]):  # one-row and uneven batches
        counts = add_counts(counts, plan.count(feature_matrix(batch)[1]))
        folded = fold_tensor(reference, batch)
        straight = folded if straight is None else [merge(a, b) for a, b in zip(
            straight, folded, strict=True)]
    got = plan.folds(counts)
    assert list(got) == plan.names
    for name, want in zip(plan.names, straight, strict=True):
        same(got[name], want)
    assert sum(f["n"] + f["missing"] for f in got.values()) == live.shape[0] * len(got)


def test_plan_folds_only_the_features_a_narrower_tensor_has():
    reference = sketch(load_breast_cancer().data)
    narrow = corrupt(load_breast_cancer().data[:50, :12], np.random.default_rng(2))
    got = TensorPlan(reference).folds(TensorPlan(reference).count(feature_matrix(narrow)[1]))
    want = fold_tensor(reference, narrow)  # zip: the first 12 features
    assert len(got) == len(want) == 12
    for name, folded in zip(got, want, strict=True):
        same(got[name], folded)


@pytest.mark.parametrize("shape", [(40, 28, 28, 1), (30, 12, 12, 3), (20, 3, 9, 9)])
def test_image_statistics_match_numpy(shape):
    images = np.random.default_rng(3).random(shape, dtype=np.float32)
    names, matrix = feature_matrix(images)
    array = images.astype(np.float64)
    flat = (array.reshape(len(array), -1, shape[-1]) if shape[-1] <= 4
            else array.reshape(len(array), shape[1], -1).transpose(0, 2, 1))
    assert len(names) == matrix.shape[1] == 2 * flat.shape[2]
    np.testing.assert_allclose(matrix, np.concatenate([flat.mean(1), flat.std(1)], 1),
                               rtol=1e-12, atol=1e-15)


class Written:
    """Stands in for the store: what ``TrafficSketches.flush`` would write."""

    def __init__(self, monkeypatch) -> None:
        self.rows: list[dict] = []
        monkeypatch.setattr("lepton.store._monitor.write_sketches",
                            lambda store, rows: self.rows.extend(rows) or len(rows))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_traffic_sketches_record_what_the_straightforward_fold_records(monkeypatch):
    """Images and raw records of one version, over several flushes of a window: the written
    sketch equals fold_inputs of each flush's requests merged, and counts every request."""
    rng = np.random.default_rng(4)
    images = rng.random((300, 8, 8, 1), dtype=np.float32)
    frame = {"size": rng.normal(size=300), "colour": rng.choice(["red", "green", "blue"], 300)}
    import pandas as pd

    reference = profile({"image": images}, {"out": images[:, 0, 0, :]},
                        columns=pd.DataFrame(frame))
    written = Written(monkeypatch)
    sketches = ts.TrafficSketches(store=None, window_s=60.0)
    sketches._references[("cnn", 1)] = reference
    sketches._plans[("cnn", 1)] = {"image": TensorPlan(reference["inputs"]["image"])}
    want: dict = {}
    live = corrupt(rng.random((90, 8, 8, 1)), rng).astype(np.float32)
    for flush in range(3):
        part = live[flush * 30:(flush + 1) * 30]
        entries = [("cnn", 1, {"image": part[i:i + 2]}) for i in range(0, 30, 2)]
        records = [{"size": float(v), "colour": c} for v, c in
                   zip(rng.normal(size=4), ["red", "pink", None, "blue"], strict=True)]
        entries.append(("cnn", 1, records))
        entries.append(("cnn", 1, records[:1]))
        sketches.fold(entries, {("cnn", 1): 1}, now=1000.0 + flush)
        want = merge_folds(want, fold_inputs(reference, {"image": part}))
        records_fold = fold_inputs(reference, records + records[:1])
        want = merge_folds(want, records_fold)
    assert sketches.flush(now=2000.0) == 1
    (row,) = written.rows
    assert (row["requests"], row["errors"], row["window_start"]) == (3 * 17, 3, 1000.0)
    got = row["sketch"]["inputs"]
    assert set(got) == set(want) and "image.channel0_std" in got and "colour" in got
    for name, folded in want.items():
        same(got[name], folded)
    assert got["image.channel0_mean"]["n"] + got["image.channel0_mean"]["missing"] == 90


def test_a_busy_flush_folds_a_sample_and_counts_every_request(monkeypatch):
    written = Written(monkeypatch)
    reference = profile({"x": load_breast_cancer().data}, {"y": np.zeros((569, 1))})
    sketches = ts.TrafficSketches(store=None)
    sketches._references[("m", 2)] = reference
    sketches._plans[("m", 2)] = {"x": TensorPlan(reference["inputs"]["x"])}
    data = load_breast_cancer().data
    entries = [("m", 2, {"x": data[i:i + 1]}) for i in range(500)]
    entries += [("other", None, {"x": data[:1]})] * 3  # no reference: only counted
    sketches.fold(entries, {}, now=0.0)
    sketches.flush(force=True)
    rows = {(r["model"], r["version"]): r for r in written.rows}
    assert rows[("m", 2)]["requests"] == 500 and rows[("other", None)]["requests"] == 3
    folds = rows[("m", 2)]["sketch"]["inputs"]
    assert {f["n"] for f in folds.values()} == {ts.MAX_FOLD}
    assert rows[("other", None)]["sketch"]["inputs"] == {}
