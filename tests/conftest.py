"""Shared fixtures: real data, small enough for CI on 2 cores, and where test data lives.

Small real datasets are in the repository (``FIXTURES``, see tests/fixtures/README.md);
large files come from one setting (``large_file``). Tests marked ``gpu`` run only where
CUDA is available.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"

os.environ.setdefault("LEPTON_NUM_THREADS", "2")


def large_data_dir() -> Path:
    """The folder of large test files: ``$LEPTON_TEST_DATA``, else ``../shared/data``."""
    return Path(os.environ.get("LEPTON_TEST_DATA") or REPO.parent / "shared" / "data")


def large_file(relpath: str) -> Path:
    """The path of a large test file that is not in the repository. When it is missing the
    test fails under ``CI=true`` (CI must provide it) and is skipped elsewhere, naming the
    path it looked for."""
    path = large_data_dir() / relpath
    if not path.is_file():
        message = (f"large test file missing: {path} (set LEPTON_TEST_DATA to the folder "
                   f"that holds {relpath})")
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


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
