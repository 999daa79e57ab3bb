"""`--model auto` on small tables: candidates chosen by k-fold cross-validation."""

from __future__ import annotations

import json

import numpy as np

from lepton.train import train
from lepton.train.crossval import stratified_folds


def test_stratified_folds_partition_the_rows_and_spread_each_class():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    folds = stratified_folds(y, 5, seed=0, classes=True)
    assert sorted(np.concatenate(folds).tolist()) == list(range(100))
    for fold in folds:
        assert np.bincount(y[fold]).tolist() == [10, 6, 4]


def test_auto_on_a_small_table_picks_by_cross_validation_and_trains_on_all_rows(
        iris_csv, tmp_path, home):
    lines: list[str] = []
    result = train(iris_csv, "target", out=tmp_path / "m", register=False, log=lines.append)
    assert sum("5-fold CV" in line for line in lines) == 2  # linear and the MLP
    info = json.loads((result.path / "lepton.json").read_text())["metadata"]["report_info"]
    assert "5-fold CV accuracy" in info["candidates"]
    assert result.metrics["accuracy"] >= 0.9
    assert result.metrics["n"] == 30  # the test split stays out of everything


def test_cv_folds_zero_keeps_the_single_validation_split(iris_csv, tmp_path, home):
    lines: list[str] = []
    train(iris_csv, "target", out=tmp_path / "m", register=False, log=lines.append,
          config={"train": {"cv_folds": 0}})
    assert not any("fold CV" in line for line in lines)
    assert any("picked" in line for line in lines)
