"""`lepton demo` and the CLI's entry points, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lepton.core import load_model


def lepton(*args: str, home=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEPTON_HOME": str(home)} if home else None
    return subprocess.run([sys.executable, "-m", "lepton", *args], capture_output=True,
                          text=True, timeout=600, env=env)


def test_help_lists_the_commands():
    result = lepton("--help")
    assert result.returncode == 0
    for command in ("demo", "serve", "models"):
        assert command in result.stdout


def test_demo_runs_the_loop_and_says_where(tmp_path):
    """Train -> report -> register -> serve -> predictions and feedback through the client."""
    home = tmp_path / "workspace"
    result = lepton("demo", "--quick", "--out", str(tmp_path / "demo"), home=home)
    assert result.returncode == 0, result.stderr
    out = result.stdout.replace("\n", "")
    assert "Test accuracy:" in out
    artifact = tmp_path / "demo" / "model"
    assert str(artifact) in out
    model = load_model(artifact)
    assert model.metadata["metrics"]["test_accuracy"] > 0.8

    report = artifact / "report.html"
    assert str(report) in out
    assert "Confusion matrix" in report.read_text() and "data:image/png;base64" in \
        report.read_text()
    assert "curl -s http://127.0.0.1:8000/v1/models/mnist/predict" in out

    shown = lepton("models", "show", "mnist", home=home)
    assert shown.returncode == 0, shown.stderr
    assert "production" in shown.stdout

    exported = lepton("feedback", "export", "--model", "mnist", home=home)
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(records) == 1
    assert records[0]["label"] == "7"  # the first MNIST test digit
    assert records[0]["prediction_id"] in out


def test_user_error_is_one_line_without_traceback(tmp_path):
    result = lepton("demo", "--quick", "--epochs", "0", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "epochs" in result.stderr
