"""Metrics agree with scikit-learn; the HTML report is self-contained and renders in Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from lepton.evaluate import evaluate_outputs, regression_metrics, save_report


@pytest.fixture
def binary_case():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(xtr), ytr)
    return yte, clf.predict_proba(scaler.transform(xte))


def test_binary_metrics_match_sklearn(binary_case):
    from sklearn import metrics as skm

    y, proba = binary_case
    history = {"loss": [0.6, 0.3, 0.2], "val_loss": [0.5, 0.3, 0.25],
               "accuracy": [0.8, 0.9, 0.95], "val_accuracy": [0.85, 0.9, 0.93]}
    metrics, figures = evaluate_outputs("binary", y, proba, ["malignant", "benign"], history)
    pred = proba.argmax(1)
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert metrics["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert metrics["loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-4)
    assert metrics["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert set(figures) == {"training_curves", "confusion_matrix", "roc", "pr", "calibration"}
    assert all(png.startswith(b"\x89PNG") for png in figures.values())


def test_logits_and_multiclass():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + 3 * np.eye(3)[y]
    metrics, _ = evaluate_outputs("multiclass", y, logits, ["a", "b", "c"])
    assert metrics["accuracy"] > 0.8 and 0.9 < metrics["roc_auc"] <= 1
    assert set(metrics["per_class"]) == {"a", "b", "c"}


def test_regression_metrics():
    m = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.5, 2.5])
    assert m["mae"] == pytest.approx(1 / 3) and m["rmse"] == pytest.approx(np.sqrt(1 / 6))
    assert m["r2"] == pytest.approx(1 - (0.5 / 2))


def test_report_is_self_contained_and_renders_in_chromium(tmp_path, binary_case):
    y, proba = binary_case
    metrics, figures = evaluate_outputs("binary", y, proba, ["malignant", "benign"],
                                        {"loss": [0.5, 0.2], "val_loss": [0.4, 0.3]})
    report = save_report(tmp_path / "report.html", "Breast cancer", metrics, figures,
                         {"model": "demo", "skipped images": 0})
    text = report.read_text()
    assert text.count("data:image/png;base64,") == len(figures)
    assert not re.search(r'src="(?!data:)', text)  # nothing loaded from outside the file
    assert (tmp_path / "plots" / "roc.png").exists() and (tmp_path / "metrics.json").exists()

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600",
                    f"--screenshot={shot}", report.as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.shape[0] >= 1000
    # not blank: many distinct colours, and the plot area holds non-white pixels
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    assert (pixels.sum(axis=2) < 600).mean() > 0.01
