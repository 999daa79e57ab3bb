"""``lepton monitor`` on a real table model: the shifted feature (and no other) is named,
clean traffic raises no alarm, quality on feedback, windows without traffic, unknown
feedback, a reference from another version refused; results stored; JSON and HTML."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from lepton.errors import ConfigError
from tests.monitor.conftest import log_records


def test_training_writes_a_reference_profile(table_model):
    from lepton.artifact.manifest import read_manifest

    _, record, frame = table_model
    ref = read_manifest(record["path"]).reference
    assert ref is not None and ref["rows"] > 100
    assert set(ref["columns"]) == set(frame.columns) - {"target"}
    column = ref["columns"]["mean_radius"]
    assert column["kind"] == "numeric" and len(column["bins"]) == 31
    assert sum(column["counts"]) == column["count"] and len(column["chunk_counts"]) == 10
    assert ref["predictions"]["kind"] == "discrete" and "accuracy" in ref["metrics"]


def test_one_shifted_feature_is_named_and_the_others_are_not(table_model, store):
    from lepton.monitor import monitor

    _, record, frame = table_model
    features = frame.drop(columns=["target"])
    shifted = features.sample(n=400, replace=True, random_state=1).reset_index(drop=True)
    shifted["mean_texture"] = shifted["mean_texture"] + 2 * features["mean_texture"].std()
    log_records(store, record, shifted, start=time.time() - 100, prefix="s", step=0.01)
    result = monitor("cancer@production", store=store)
    window = result["windows"][0]
    assert window["status"] == "ok" and window["input_source"] == "logged inputs"
    assert window["drift"]["drifted"] == ["mean_texture"]
    texture = next(f for f in window["drift"]["features"] if f["feature"] == "mean_texture")
    assert texture["method"] == "ks" and texture["p_value"] < 1e-6
    assert texture["effect"]["std_mean_difference"] > 1.5 and texture["psi"] > 0.1
    # stored: the report and one score per feature
    from lepton.store import _monitor as sm

    stored = sm.list_reports(store, "cancer")
    assert stored[0]["drifted"] == 1 and stored[0]["report"]["drift"]["drifted"] == \
        ["mean_texture"]


def test_clean_traffic_raises_no_alarm_over_several_windows(table_model, store):
    """False-alarm rate over 8 clean windows of 150 rows (resampled training rows) x 8
    features = 64 feature tests: at most 5 % of them alarm (p < 0.05 alone would give ~5 %
    per test, ~34 % of windows with 8 features; the chunk threshold cuts it further)."""
    from lepton.monitor import monitor

    _, record, frame = table_model
    clean = frame.sample(n=1200, replace=True, random_state=2).reset_index(drop=True)
    log_records(store, record, clean.drop(columns=["target"]), start=time.time() - 100,
                prefix="c", step=0.01, labels=clean["target"])
    result = monitor("cancer", window=150, store=store)
    assert result["summary"]["windows"] == 8
    alarms = sum(len(w["drift"]["drifted"]) for w in result["windows"])
    assert alarms / 64 <= 0.05, [w["drift"]["drifted"] for w in result["windows"]]
    assert sum(1 for w in result["windows"] if w["drift"]["drifted"]) <= 2
    assert all(not w["prediction_drift"]["drifted"] for w in result["windows"])
    q = result["windows"][0]["quality"]
    assert q["labelled"] == 150 and q["accuracy"] > 0.8 and 0 <= q["f1_macro"] <= 1
    assert 0.5 < q["estimated_accuracy"] <= 1 and q["calibration_error"] < 0.3
    assert result["windows"][0]["latency"]["p99_ms"] <= 7.0


def test_a_window_without_traffic_says_so(table_model, store):
    from lepton.monitor import monitor

    result = monitor("cancer", window="1h", since="3h", store=store)
    assert result["summary"]["windows"] == 3 and result["summary"]["no_traffic_windows"] == 3
    window = result["windows"][0]
    assert window["status"] == "no traffic" and "no predictions" in window["message"]
    text = json.dumps(result)
    assert "NaN" not in text and "Infinity" not in text


def test_feedback_for_unknown_ids_is_counted(table_model, store):
    from lepton.monitor import monitor
    from lepton.store._monitor import add_feedback_counted

    assert add_feedback_counted(store, "no-such-id", label=1) is None
    assert add_feedback_counted(store, "another", label=0) is None
    result = monitor("cancer", store=store)
    assert result["windows"][0]["unknown_feedback"] == 2


def test_a_reference_of_another_version_is_refused(table_model, store, tmp_path):
    from lepton.artifact.manifest import read_manifest
    from lepton.monitor import monitor

    _, record, _ = table_model
    ref = dict(read_manifest(record["path"]).reference)
    ref["model"] = {"name": "cancer", "version": 7}
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(ref))
    with pytest.raises(ConfigError, match=r"cancer:1.*cancer:7"):
        monitor("cancer", reference=str(path), store=store)


def test_reference_from_data_for_an_artifact_without_one(table_model, store):
    from lepton.monitor.profile import profile_data

    csv, record, frame = table_model
    ref = profile_data(record, csv)
    assert ref["model"] == {"name": "cancer", "version": record["version"]}
    assert set(ref["columns"]) == set(frame.columns) - {"target"}


def test_cli_json_and_html(table_model, store, tmp_path, capsys):
    from lepton.cli import main

    _, record, frame = table_model
    log_records(store, record, frame.drop(columns=["target"]).head(50),
                start=time.time() - 10, prefix="h", step=0.01)
    page = tmp_path / "monitor.html"
    assert main(["monitor", "cancer@production", "--json", "--html", str(page)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["rows"] == 50
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64" in html
    assert main(["monitor", "cancer", "--window", "abc"]) == 2


def test_drift_statistics_agree_with_scipy_on_raw_data():
    """The binned statistics against SciPy's exact ones on the same samples."""
    from scipy import stats

    from lepton.monitor import stats as ms
    from lepton.sketch.folding import fold
    from lepton.sketch.reference import sketch

    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=5000), rng.normal(0.3, 1.2, size=800)
    feature = sketch(ref)["features"][0]
    counts = np.asarray(fold(feature, cur)["counts"])
    d, p = ms.ks(np.asarray(feature["counts"]), counts)
    exact = stats.ks_2samp(ref, cur)
    assert abs(d - exact.statistic) < 0.03 and p < 0.05 and exact.pvalue < 0.05
    w = ms.wasserstein(np.asarray(feature["bins"]), np.asarray(feature["counts"]), counts,
                       cur.min(), cur.max(), ref.std())
    assert w == pytest.approx(stats.wasserstein_distance(ref, cur) / ref.std(), rel=0.15)
    assert ms.psi(np.asarray(feature["counts"]), np.asarray(feature["counts"])) == 0.0


def test_cli_table_names_the_shifted_feature(table_model, store, capsys, monkeypatch):
    """The text output is the windows table: the shifted column in the drifted one's row."""
    from lepton.cli import main

    monkeypatch.setenv("COLUMNS", "200")  # rich wraps a piped table at 80 columns
    _, record, frame = table_model
    features = frame.drop(columns=["target"])
    shifted = features.sample(n=300, replace=True, random_state=2).reset_index(drop=True)
    shifted["mean_texture"] = shifted["mean_texture"] + 2 * features["mean_texture"].std()
    log_records(store, record, shifted, start=time.time() - 50, prefix="t", step=0.01)
    assert main(["monitor", "cancer@production", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "Monitoring cancer:" in out and "drifted inputs" in out
    assert "mean_texture" in out and "300" in out
