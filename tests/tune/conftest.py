"""Fixtures for the tune suite: real tables on disk, an isolated workspace, a tiny space."""

from __future__ import annotations

from pathlib import Path

import pytest

# trials of a few epochs of a small MLP: each trains in well under a second
TINY_SPACE = {"preset": ["mlp"], "depth": {"low": 1, "high": 1},
              "width": {"low": 8, "high": 32, "log": True},
              "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}, "epochs": [6]}


def write_table(name: str, folder: Path) -> Path:
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "iris": datasets.load_iris,
              "wine": datasets.load_wine}[name]
    path = folder / f"{name}.csv"
    loader(as_frame=True).frame.to_csv(path, index=False)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh Lepton workspace (SQLite store) for this test and the processes it starts."""
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LEPTON_DB_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def breast_cancer_csv(tmp_path) -> Path:
    return write_table("breast_cancer", tmp_path)


@pytest.fixture
def iris_csv(tmp_path) -> Path:
    return write_table("iris", tmp_path)


@pytest.fixture(scope="module")
def pg_url():
    """A throwaway PostgreSQL on 127.0.0.1 (the store suite's server helper), per module."""
    from lepton.store._local_pg import local_postgres

    with local_postgres(max_connections=50) as url:
        yield url
