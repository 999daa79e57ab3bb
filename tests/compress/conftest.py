"""A small trained demo CNN artifact (the README demo's model, 3,000 digits, 1 epoch) and a
workspace of its own for the registry."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_artifact(tmp_path_factory):
    from lepton import demo

    out = tmp_path_factory.mktemp("demo")
    result = demo.train_mnist(out, demo.load_mnist(3000), epochs=1, verbose=0,
                              say=lambda *_: None)
    return result.artifact


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LEPTON_DB_URL", raising=False)
    return tmp_path
