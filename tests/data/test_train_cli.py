"""`lepton train / evaluate / predict` end to end on real data, with short settings."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lepton.artifact.predictor import Predictor
from lepton.cli import main
from lepton.errors import DataError
from tests.conftest import FIXTURES


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LEPTON_DB_URL", raising=False)


@pytest.mark.slow
def test_table_train_evaluate_predict(tmp_path, cancer_csv, capsys):
    out = tmp_path / "cancer_model"
    assert main(["train", "--data", str(cancer_csv), "--target", "target", "--out", str(out),
                 "--epochs", "40", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "registered: cancer_model:1" in printed
    assert (out / "lepton.json").exists() and (out / "report.html").exists()
    assert (out / "plots" / "roc.png").exists()
    manifest = json.loads((out / "lepton.json").read_text())
    meta = manifest["metadata"]
    assert meta["task"] == "binary" and meta["labels"] == [0, 1]
    assert meta["metrics"]["accuracy"] >= 0.93
    assert meta["preprocessing"]["format"] == "lepton.preprocessing"

    assert main(["evaluate", str(out), "--data", str(cancer_csv), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"accuracy", "f1", "roc_auc", "loss"} <= set(metrics) and metrics["accuracy"] > 0.93

    preds = tmp_path / "preds.csv"
    assert main(["predict", str(out), "--data", str(cancer_csv), "--out", str(preds)]) == 0
    table = pd.read_csv(preds)
    assert list(table.columns) == ["prediction", "p_0", "p_1"] and len(table) == 569
    np.testing.assert_allclose(table["p_0"] + table["p_1"], 1, atol=1e-5)

    frame = pd.read_csv(cancer_csv).drop(columns=["target"])
    predictor = Predictor.from_artifact(out)
    rows = predictor.predict_records(frame.head(3).to_dict("records"))
    assert [r["label"] for r in rows] == table["prediction"].head(3).tolist()
    with pytest.raises(DataError, match="'mean radius'"):
        predictor.predict_records(frame.drop(columns=["mean radius"]).head(2).to_dict("records"))
    capsys.readouterr()
    missing = tmp_path / "missing.csv"
    frame.drop(columns=["worst area"]).to_csv(missing, index=False)
    bad = ["predict", str(out), "--data", str(missing), "--out", str(tmp_path / "x.csv")]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "'worst area'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_text_column_spam(tmp_path):
    sms = pd.read_csv(FIXTURES / "sms_spam.tsv", sep="\t")
    sample = sms.sample(1500, random_state=0)
    path = tmp_path / "sms.tsv"
    sample.to_csv(path, sep="\t", index=False)
    from lepton.train import train

    result = train(path, "Label", out=tmp_path / "spam", epochs=8, register=False)
    assert result.plan.preset == "text-tfidf"
    assert result.metrics["accuracy"] >= 0.95
    predictor = Predictor.from_artifact(tmp_path / "spam")
    out = predictor.predict_records(["WINNER!! Claim your free prize now, call 09061701461",
                                     {"SMS": "see you at lunch tomorrow?"}])
    assert [r["label"] for r in out] == ["spam", "ham"]


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_image_folder_with_corrupt_file_and_mixed_sizes(tmp_path, capsys):
    data = np.load(FIXTURES / "breastmnist.npz")
    root = tmp_path / "breast"
    names = {0: "malignant", 1: "benign"}
    for split in ("train", "val", "test"):
        x, y = data[f"{split}_images"], data[f"{split}_labels"].reshape(-1)
        keep = slice(0, 120 if split == "train" else 40)
        for i, (img, label) in enumerate(zip(x[keep], y[keep], strict=True)):
            folder = root / split / names[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            pic = Image.fromarray(img)
            if i % 10 == 0:  # mixed sizes and modes: resized to the common size, made gray
                pic = pic.resize((40, 40)).convert("RGB")
            pic.save(folder / f"{i}.png" if i % 7 else folder / f"{i}.jpg")
    (root / "train" / "benign" / "broken.png").write_bytes(b"\x89PNG not an image")
    out = tmp_path / "breast_model"
    code = main(["train", "--data", str(root), "--out", str(out), "--epochs", "2", "--quiet",
                 "--no-register"])
    assert code == 0
    err = capsys.readouterr().err
    assert "broken.png" in err
    meta = json.loads((out / "lepton.json").read_text())["metadata"]
    assert meta["preprocessing"]["size"] == [28, 28] and meta["preprocessing"]["channels"] == 1
    assert meta["preprocessing"]["skipped_files"] == 1
    assert "skipped corrupt images</th><td>1" in (out / "report.html").read_text()
    predictor = Predictor.from_artifact(out)
    img = data["test_images"][0]
    raw = _png(img)
    a = predictor.predict_records([raw, base64.b64encode(raw).decode(), img.tolist()])
    assert a[0] == a[1] == a[2] and set(a[0]["probabilities"]) == {"benign", "malignant"}
    a_file = next((root / "test").rglob("*.png"))
    with pytest.raises(DataError, match="base64"):  # text is never opened as a server path
        predictor.predict_records([str(a_file)])
    assert main(["evaluate", str(out), "--data", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 40
    assert main(["predict", str(out), "--data", str(root / "test"), "--out",
                 str(tmp_path / "p.jsonl")]) == 0
    assert len(pd.read_json(tmp_path / "p.jsonl", lines=True)) == 40


@pytest.mark.parametrize("case", ["empty", "no_target", "one_class", "garbage"])
def test_bad_data_fails_with_one_line_and_leaves_nothing(tmp_path, capsys, case):
    path = tmp_path / "data.csv"
    frame = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40) % 3, "y": [0, 1] * 20})
    if case == "empty":
        path.write_text("")
    else:
        if case == "one_class":
            frame["y"] = 1
        if case == "garbage":
            frame = frame.astype({"a": object})
            frame.loc[3, "a"] = "twelve"
        frame.to_csv(path, index=False)
    target = "label" if case == "no_target" else "y"
    out = tmp_path / "model"
    code = main(["train", "--data", str(path), "--target", target, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("lepton train: error:")
    expected = {"empty": "is empty", "no_target": "'label'", "one_class": "only one class",
                "garbage": "Column 'a'"}[case]
    assert expected in err[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".model")]


def test_yaml_config_mixed_columns_and_store_records(tmp_path, mixed_frame):
    data = tmp_path / "mixed.csv"
    mixed_frame.to_csv(data, index=False)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: {data}\ntarget: label\nmodel: {{preset: mlp-small}}\n"
                   "preprocessing:\n  numeric: {scale: minmax}\n  columns:\n"
                   "    notes: {type: ignore}\nsplit: {seed: 1, test: 0.25}\n"
                   "train: {epochs: 15, weight_decay: 0.001, min_epochs: 2}\n"
                   f"out: {tmp_path / 'mixed_model'}\n")
    assert main(["train", "--config", str(cfg), "--quiet", "--name", "mixed"]) == 0
    predictor = Predictor.from_artifact(tmp_path / "mixed_model")
    state = predictor.metadata["preprocessing"]
    assert state["config"]["numeric"]["scale"] == "minmax"
    assert "notes" not in predictor.pipeline.input_columns
    plan = predictor.metadata["training"]["config"]["plan"]  # every plan setting is configurable
    assert (plan["weight_decay"], plan["min_epochs"]) == (0.001, 2)
    out = predictor.predict_records([{"age": None, "city": "tokyo", "score": 0.3},
                                     {"age": 70, "city": "paris", "score": 2.0}])
    assert out[1]["label"] == "yes" and set(out[0]["probabilities"]) == {"no", "yes"}

    from lepton.registry import Registry
    from lepton.store import Store

    store = Store.open()
    runs = store.list_runs()
    assert runs and runs[0]["status"] == "finished"
    assert Registry(store).resolve("mixed")["version"] == 1
    from lepton.artifact import read_manifest
    from lepton.train.datasets import data_hash

    lineage = read_manifest(tmp_path / "mixed_model").lineage  # the artifact knows its run
    assert lineage == {"data_digest": data_hash(data), "run_id": runs[0]["id"]}


def test_linear_preset_trains_through_fit_and_reports_its_epoch(tmp_path, cancer_csv):
    """The full-batch L-BFGS of the linear preset runs inside fit, so the run store gets its
    epoch like any other model's, and it keeps its accuracy (0.965 on this split: its L2
    penalty is scikit-learn's binary one, so it answers as LogisticRegression does)."""
    from lepton.store import Store
    from lepton.train import train

    result = train(cancer_csv, "target", model="linear", out=tmp_path / "linear",
                   register=False)
    assert result.metrics["accuracy"] >= 0.96
    assert len(result.history["val_loss"]) == 1  # one step, run to convergence
    store = Store.open()
    logged = store.get_run(store.list_runs()[0]["id"])["metrics"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(logged)
    assert logged["val_loss"] == [(0, pytest.approx(result.history["val_loss"][0]))]
