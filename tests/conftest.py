"""Shared fixtures: real data, small enough for CI on 2 cores."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

os.environ.setdefault("LEPTON_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def mnist_small() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """3,000 train / 1,000 test MNIST digits, channels-last float32 in [0, 1]."""
    from lepton.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    prep = lambda x: (x[..., None] / 255.0).astype("float32")  # noqa: E731
    return prep(x_train[:3000]), y_train[:3000].astype("int64"), prep(x_test[:1000]), \
        y_test[:1000].astype("int64")


@pytest.fixture(scope="session")
def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    return StandardScaler().fit_transform(data.data).astype("float32"), data.target
