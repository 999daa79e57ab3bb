"""Shared fixtures for the data tests: small real tables written as files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture
def cancer_csv(tmp_path: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    """Numeric, categorical and text columns with missing values; label follows the features."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 300
    age = rng.normal(40, 10, n)
    city = rng.choice(["paris", "lyon", "nice"], n)
    score = rng.normal(0, 1, n)
    label = np.where(age / 10 + (city == "paris") * 2 + score > 5.5, "yes", "no")
    notes = np.where(label == "yes", "great happy customer buys often",
                     "rarely seen quiet customer")
    frame = pd.DataFrame({"age": age, "city": city, "score": score, "notes": notes,
                          "label": label})
    frame.loc[::17, "age"] = np.nan
    frame.loc[::23, "city"] = None
    return frame
