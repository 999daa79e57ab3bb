"""`lepton demo` and the CLI's entry points, run as a user would."""

from __future__ import annotations

import subprocess
import sys

from lepton.core import load_model


def lepton(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lepton", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def test_help_lists_the_commands():
    result = lepton("--help")
    assert result.returncode == 0
    for command in ("demo", "serve", "models"):
        assert command in result.stdout


def test_demo_quick_trains_saves_and_says_where(tmp_path):
    result = lepton("demo", "--quick", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "Test accuracy:" in result.stdout
    artifact = tmp_path / "demo" / "model"
    assert str(artifact) in result.stdout.replace("\n", "")
    model = load_model(artifact)
    assert model.metadata["metrics"]["test_accuracy"] > 0.8


def test_user_error_is_one_line_without_traceback(tmp_path):
    result = lepton("demo", "--quick", "--epochs", "0", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "epochs" in result.stderr
