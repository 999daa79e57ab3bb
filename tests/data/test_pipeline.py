"""The preprocessing pipeline: fitted on training rows only, JSON round trip, YAML config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lepton.data import Pipeline, load_preprocessing, read_table, split_indices
from lepton.data.split import class_weights


def test_fit_transform_round_trip_is_identical(mixed_frame):
    pipe = Pipeline("label").fit(mixed_frame)
    x = pipe.transform(mixed_frame)
    state = json.loads(json.dumps(pipe.to_json()))  # JSON only, nothing pickled
    again = load_preprocessing(state).transform(mixed_frame)
    np.testing.assert_array_equal(x, again)
    kinds = {c["name"]: c["type"] for c in state["columns"]}
    assert kinds == {"age": "numeric", "city": "categorical", "score": "numeric", "notes": "text"}
    assert state["labels"] == ["no", "yes"] and state["task"] == "binary"
    assert not np.isnan(x).any()


def test_statistics_come_from_the_training_rows_only(mixed_frame):
    train = mixed_frame.iloc[:150]
    pipe = Pipeline("label").fit(train)
    age = next(c for c in pipe.to_json()["columns"] if c["name"] == "age")
    clipped = np.clip(train["age"].dropna(), *np.quantile(train["age"].dropna(), [0.001, 0.999]))
    assert age["center"] == pytest.approx(clipped.mean())
    assert age["fill"] == pytest.approx(train["age"].median())


def test_digits_constant_pixels_are_dropped_not_divided_by_zero():
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    pipe = Pipeline("target").fit(frame)
    x = pipe.transform(frame)
    assert set(pipe.dropped["constant"]) == {"pixel_0_0", "pixel_4_0", "pixel_4_7"}
    assert np.isfinite(x).all() and x.shape == (1797, 61)


def test_yaml_declaration_matches_python(tmp_path, mixed_frame):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("target: label\npreprocessing:\n  numeric: {scale: minmax, clip: null}\n"
                   "  columns:\n    notes: {type: ignore}\n")
    from_yaml = Pipeline.from_yaml(cfg).fit(mixed_frame)
    from_python = Pipeline("label", numeric={"scale": "minmax", "clip": None},
                           columns={"notes": {"type": "ignore"}}).fit(mixed_frame)
    np.testing.assert_array_equal(from_yaml.transform(mixed_frame),
                                  from_python.transform(mixed_frame))
    assert "notes" not in from_yaml.input_columns
    age = from_yaml.transform(mixed_frame)[:, 0]
    assert age.min() == pytest.approx(0) and age.max() == pytest.approx(1)


def test_duplicates_and_missing_targets_are_dropped_from_training(mixed_frame):
    frame = pd.concat([mixed_frame, mixed_frame.iloc[:10]], ignore_index=True)
    frame.loc[50, "label"] = None
    with pytest.warns(UserWarning):
        cleaned = Pipeline("label").clean_training_rows(frame)
    assert len(cleaned) == len(mixed_frame) - 1


def test_sequence_text_mode_gives_token_ids():
    frame = pd.DataFrame({"t": ["free prize now", "see you at lunch", "win cash now"] * 10,
                          "y": ["spam", "ham", "spam"] * 10})
    pipe = Pipeline("y", text={"mode": "sequence"}).fit(frame)
    ids = pipe.transform(pd.DataFrame({"t": ["free lunch zzz"]}))
    assert ids.dtype == np.int64 and pipe.kind == "text"
    assert ids[0, 2] == 1 and ids[0, 0] >= 2  # zzz is out of vocabulary, padding is 0
    assert load_preprocessing(pipe.to_json()).transform(frame).tolist() == \
        pipe.transform(frame).tolist()


def test_split_is_seeded_stratified_and_disjoint():
    y = np.array([0] * 80 + [1] * 20)
    a, b = split_indices(y, seed=3), split_indices(y, seed=3)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(100))
    assert y[a["test"]].mean() == pytest.approx(0.2)


def test_class_weights_favour_the_rare_class():
    y = np.array([0] * 90 + [1] * 10)
    w = class_weights(y, 2, "balanced")
    assert w[1] == pytest.approx(5.0) and w[0] == pytest.approx(100 / 180)
    assert class_weights(np.array([0, 1] * 10), 2, "auto") is None


def test_parquet_and_tsv_load(tmp_path, mixed_frame):
    mixed_frame.to_parquet(tmp_path / "d.parquet")
    mixed_frame.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    a, b = read_table(tmp_path / "d.parquet"), read_table(tmp_path / "d.tsv")
    assert list(a.columns) == list(b.columns) == list(mixed_frame.columns)
    assert len(a) == len(b) == len(mixed_frame)
