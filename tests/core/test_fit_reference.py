"""`fit` then `Model.save` writes the artifact's reference profile: from a seeded sample of
the training rows (arrays) or a reservoir over the first epoch (streams), read back by the
monitor's statistics; an explicit reference wins; a failure to profile never fails save."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.preprocessing import StandardScaler

from lepton.artifact import read_manifest
from lepton.artifact.save import save_artifact
from lepton.core.layers import Concatenate, Dense, Flatten, Input
from lepton.core.models import Model, Sequential
from lepton.core.training.sample import Reservoir
from lepton.errors import LeptonWarning
from lepton.monitor.drift import feature_drift, summarize
from lepton.sketch.folding import feature_sketches, fold_inputs
from lepton.sketch.reference import check_reference


@pytest.fixture(scope="module")
def cancer():
    x, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(x).astype(np.float32), y.astype(np.float32)


def binary_model(features: int = 30) -> Sequential:
    torch.manual_seed(0)
    model = Sequential([Dense(16, activation="relu", input_shape=(features,)),
                        Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    return model


def drifted(reference: dict, window: dict) -> list[str]:
    folds = fold_inputs(reference, window)
    features = [r for name, ref in feature_sketches(reference).items() if name in folds
                for r in feature_drift(name, ref, folds[name])]
    return summarize(features)["drifted"]


def test_fit_then_save_writes_a_reference_the_monitor_reads(cancer, tmp_path):
    x, y = cancer
    model = binary_model()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, validation_split=0.2, seed=0)
    model.save(tmp_path / "m")
    ref = read_manifest(tmp_path / "m").reference
    check_reference(ref)
    train = x[: len(x) - round(len(x) * 0.2)]  # the rows fit trained on (all under 2,000)
    assert ref["rows"] == len(train) == ref["sample"]["of"]
    assert ref["inputs"]["input_1"]["names"] == [str(i) for i in range(30)]
    np.testing.assert_allclose(ref["inputs"]["input_1"]["features"][3]["mean"],
                               train[:, 3].mean(), rtol=1e-5)
    predicted = (model.predict(train)[:, 0] >= 0.5).astype(int)
    values = [int(v) for v in ref["predictions"]["values"]]
    assert ref["predictions"]["counts"][:len(values)] == np.bincount(predicted)[values].tolist()
    assert set(ref["metrics"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}

    # traffic folded onto the reference's bins: one shifted feature is named, no other one
    window = train[:300].copy()
    assert drifted(ref, {"input_1": window}) == []
    window[:, 3] += 2.0  # two standard deviations (the features are standardised)
    assert drifted(ref, {"input_1": window}) == ["input_1.3"]


def test_a_large_table_is_sampled_deterministically_and_cheaply(tmp_path):
    x, y = load_digits(return_X_y=True)
    x = np.tile(x.astype(np.float32) / 16, (2, 1))
    y = np.tile(y, 2)
    refs = []
    for run in range(2):
        model = Sequential([Dense(32, activation="relu", input_shape=(64,)),
                            Dense(10, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, verbose=0, seed=0)
        model.save(tmp_path / f"m{run}", metadata={"labels": [f"d{i}" for i in range(10)]})
        refs.append(read_manifest(tmp_path / f"m{run}").reference)
    assert refs[0]["rows"] == 2000 and refs[0]["sample"]["of"] == len(x)
    assert refs[0]["predictions"]["labels"] == [f"d{i}" for i in range(10)]
    assert refs[0]["inputs"] == refs[1]["inputs"]  # the same rows on every run


def test_each_input_and_output_of_a_multi_io_model_is_sketched_by_name(cancer, tmp_path):
    x, y = cancer
    a, b = Input((20,), name="left"), Input((10,), name="right")
    joined = Concatenate()([Dense(8)(a), Dense(8)(b)])
    outs = [Dense(1, activation="sigmoid", name="malignant")(joined),
            Dense(1, name="radius")(joined)]
    model = Model([a, b], outs)
    model.compile(loss=["binary_crossentropy", "mse"])
    model.fit({"left": x[:, :20], "right": x[:, 20:]}, [y, x[:, 0]], epochs=1, verbose=0)
    model.save(tmp_path / "m")
    ref = read_manifest(tmp_path / "m").reference
    assert set(ref["inputs"]) == {"left", "right"}
    assert len(ref["inputs"]["right"]["features"]) == 10
    assert set(ref["outputs"]) == {"malignant", "radius"}
    assert set(ref["predictions"]["values"]) <= {0.0, 1.0}  # the first output's classes


def test_a_streamed_fit_gets_a_reference_from_a_reservoir(tmp_path):
    from PIL import Image

    from lepton.data import image_dataset_from_directory

    rng = np.random.default_rng(0)
    for k, (name, level) in enumerate([("dark", 40), ("light", 200)]):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(24):
            pixels = np.clip(rng.normal(level, 20, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{k}_{i}.png")
    data = image_dataset_from_directory(tmp_path / "images", image_size=(12, 12),
                                        batch_size=8, seed=0)
    model = Sequential([Flatten(input_shape=(12, 12, 3)), Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    model.fit(data, epochs=2, verbose=0)
    model.save(tmp_path / "m")
    ref = read_manifest(tmp_path / "m").reference
    check_reference(ref)
    assert ref["sample"] == {"rows": 48, "of": 48}  # the first epoch only
    assert ref["inputs"]["input_1"]["names"][:3] == [f"channel{c}_mean" for c in range(3)]
    assert ref["predictions"]["labels"] == ["dark", "light"]
    assert 100 < ref["inputs"]["input_1"]["features"][0]["mean"] < 140  # half dark, half light


def test_the_reservoir_is_a_seeded_uniform_sample_of_the_whole_stream():
    def stream():
        for start in range(0, 10_000, 100):
            yield [torch.arange(start, start + 100, dtype=torch.float32)[:, None]], [], None

    samples = []
    for _ in range(2):
        reservoir, model = Reservoir(rows=500, seed=3), types.SimpleNamespace()
        assert sum(1 for _ in reservoir.watch(stream(), model)) == 100
        samples.append(model.training_sample)  # set once the stream is through
    rows = samples[0].inputs[0][:, 0]
    assert samples[0].seen == 10_000 and len(np.unique(rows)) == 500
    np.testing.assert_array_equal(rows, samples[1].inputs[0][:, 0])
    assert abs(rows.mean() - 5000) < 500 and (rows >= 9000).sum() > 20  # from the whole stream


def test_save_without_fit_writes_none_and_an_explicit_reference_wins(cancer, tmp_path):
    x, y = cancer
    model = binary_model()
    model.build_for([(30,)])
    model.save(tmp_path / "unfitted")
    assert read_manifest(tmp_path / "unfitted").reference is None

    model.fit(x, y, epochs=1, verbose=0)
    given = {**read_manifest(model.save(tmp_path / "auto")).reference, "rows": 7}
    save_artifact(model, tmp_path / "given", reference=given)
    assert read_manifest(tmp_path / "given").reference["rows"] == 7


def test_a_failure_to_profile_warns_and_still_saves(cancer, tmp_path, monkeypatch):
    x, y = cancer
    model = binary_model()
    model.fit(x, y, epochs=1, verbose=0)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model, "predict", broken)
    monkeypatch.setattr("lepton.core.training.sample._warned", set())
    with pytest.warns(LeptonWarning, match="no reference profile"):
        model.save(tmp_path / "m")
    assert read_manifest(tmp_path / "m").reference is None
