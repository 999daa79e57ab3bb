"""The package's front door (``lepton.__all__`` and its lazy map) and the test-data helper."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lepton
from tests.conftest import REPO, large_file


def public_modules() -> set[str]:
    """Every module and subpackage directly under lepton/ whose name has no underscore."""
    return {m.name for m in pkgutil.iter_modules([str(Path(lepton.__file__).parent)])
            if not m.name.startswith("_")}


def test_every_public_module_is_in_all_and_loads_lazily():
    modules = public_modules()
    assert {"core", "data", "train", "serve", "artifact", "client"} <= modules
    assert modules <= set(lepton.__all__), f"missing from lepton.__all__: " \
        f"{sorted(modules - set(lepton.__all__))}"
    for name in modules:
        module = getattr(lepton, name)
        assert module.__name__ == f"lepton.{name}"


def test_every_name_in_all_resolves():
    for name in lepton.__all__:
        assert getattr(lepton, name) is not None
    assert lepton.Client.__module__ == "lepton.client"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lepton.nope  # noqa: B018


def test_import_lepton_stays_light():
    """``import lepton`` (and its version) loads neither torch nor NumPy nor pandas."""
    code = ("import sys, lepton; lepton.__version__; "
            "print(sorted(m for m in ('torch', 'numpy', 'pandas', 'fastapi') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_large_file_found_through_the_setting(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    weights = tmp_path / "models" / "w.safetensors"
    weights.write_bytes(b"\0" * 8)
    monkeypatch.setenv("LEPTON_TEST_DATA", str(tmp_path))
    assert large_file("models/w.safetensors") == weights


def test_large_file_missing_skips_with_the_path_outside_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_TEST_DATA", str(tmp_path / "nowhere"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=str(tmp_path / "nowhere" / "big.bin")):
        large_file("big.bin")


def test_large_file_missing_fails_in_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_TEST_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="LEPTON_TEST_DATA"):
        large_file("big.bin")


def test_large_file_falls_back_to_shared_beside_the_repository(monkeypatch):
    monkeypatch.delenv("LEPTON_TEST_DATA", raising=False)
    monkeypatch.delenv("CI", raising=False)
    beside = re.escape(str(REPO.parent)) + r"/shared/data/not-there\.bin"
    with pytest.raises(pytest.skip.Exception, match=beside):
        large_file("not-there.bin")
