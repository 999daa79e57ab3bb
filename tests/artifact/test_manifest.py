"""Manifest v2: version-1 artifacts still load, the new fields round-trip, bad ones are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lepton.artifact import (
    Predictor,
    open_runtime,
    read_manifest,
    save_artifact,
    update_manifest,
    write_reference,
)
from lepton.core import Model, Sequential, layers, load_model, register
from lepton.errors import ArtifactError
from lepton.sketch.reference import profile

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture()
def v1_iris(tmp_path):
    """A copy of the version-1 artifact that Lepton 0.1 wrote (tests may change it)."""
    return Path(shutil.copytree(FIXTURES / "v1-iris", tmp_path / "v1-iris"))


def _mlp():
    model = Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                        layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_a_version_1_artifact_loads_and_predicts_as_it_did(v1_iris):
    x, want = np.load(FIXTURES / "v1-iris-x.npy"), np.load(FIXTURES / "v1-iris-y.npy")
    model = load_model(v1_iris)
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-6, atol=1e-7)
    assert model.metadata["labels"] == ["setosa", "versicolor", "virginica"]
    manifest = read_manifest(v1_iris)
    assert manifest.format_version == 1
    assert manifest.variant == {"name": "fp32", "transforms": []}
    assert manifest.runtime == {"name": "torch", "files": ["weights.safetensors"]}
    assert manifest.lineage == {} and manifest.reference is None
    assert [s.datatype for s in manifest.outputs] == ["FP32"]
    out = open_runtime(v1_iris).run([{"input_1": x}])[0]
    np.testing.assert_allclose(next(iter(out.values())), want, rtol=1e-6, atol=1e-7)


def test_a_version_1_table_artifact_predicts_through_its_saved_pipeline():
    rows = pd.read_csv(FIXTURES / "v1-iris-table-rows.csv").drop(columns=["target"])
    want = pd.read_csv(FIXTURES / "v1-iris-table-predictions.csv")
    got = Predictor.from_artifact(FIXTURES / "v1-iris-table").predict_frame(rows)
    assert got["prediction"].tolist() == want["prediction"].tolist()
    np.testing.assert_allclose(got.drop(columns=["prediction"]).to_numpy(),
                               want.drop(columns=["prediction"]).to_numpy(), rtol=1e-5)
    lineage = read_manifest(FIXTURES / "v1-iris-table").lineage
    assert len(lineage["data_digest"]) == 64  # version 1 kept it in metadata


def test_save_artifact_writes_every_version_2_field(tmp_path):
    variant = {"name": "fp32-pruned", "transforms": [{"name": "prune", "settings": {"amount": .5}}]}
    lineage = {"parent": "iris:1", "parent_digest": "ab" * 32, "transform": "prune",
               "data_digest": "cd" * 32, "run_id": "run-7"}
    save_artifact(_mlp(), tmp_path / "m", metadata={"task": "multiclass"}, variant=variant,
                  lineage=lineage)
    raw = json.loads((tmp_path / "m" / "lepton.json").read_text())
    assert raw["format_version"] == 2 and raw["variant"] == variant
    assert raw["lineage"] == lineage and raw["reference"] is None
    assert raw["runtime"] == {"name": "torch", "files": ["weights.safetensors"]}
    assert raw["signature"]["outputs"] == [{"name": "dense_1", "shape": [-1, 3],
                                            "datatype": "FP32"}] or \
        raw["signature"]["outputs"][0]["datatype"] == "FP32"
    manifest = read_manifest(tmp_path / "m")
    assert manifest.variant == variant and manifest.lineage == lineage
    assert manifest.metadata == {"task": "multiclass"}


def test_model_save_writes_version_2_that_reads_with_defaults(tmp_path):
    _mlp().save(tmp_path / "m")
    manifest = read_manifest(tmp_path / "m")
    assert manifest.format_version == 2
    assert manifest.variant["name"] == "fp32" and manifest.runtime["name"] == "torch"
    assert "kind" not in manifest.document["model"]  # the class registry rebuilds it


@register
class ArgmaxNet(Model):
    """A subclassed model whose output is class indices, not floats."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.head = layers.Dense(3)

    def call(self, x):
        return self.head(x).argmax(dim=-1)


def test_every_output_datatype_is_recorded_and_served(tmp_path):
    model = ArgmaxNet()
    model(torch.zeros(2, 4))
    model.save(tmp_path / "argmax")
    manifest = read_manifest(tmp_path / "argmax")
    assert [s.datatype for s in manifest.outputs] == ["INT64"]
    runtime = open_runtime(tmp_path / "argmax")
    out = runtime.run([{"input_1": np.ones((5, 4), np.float32)}])[0]
    assert next(iter(out.values())).dtype == np.int64


def test_update_manifest_upgrades_version_1_and_leaves_the_weights(v1_iris):
    weights = (v1_iris / "weights.safetensors").read_bytes()
    x = np.load(FIXTURES / "v1-iris-x.npy")
    model = load_model(v1_iris)
    reference = profile({"input_1": x}, {"dense_1": model.predict(x)})
    write_reference(v1_iris, reference)
    manifest = read_manifest(v1_iris)
    assert manifest.format_version == 2 and manifest.reference == reference
    assert manifest.runtime["name"] == "torch"
    assert (v1_iris / "weights.safetensors").read_bytes() == weights
    np.testing.assert_allclose(load_model(v1_iris).predict(x), np.load(FIXTURES / "v1-iris-y.npy"),
                               rtol=1e-6, atol=1e-7)


def test_profile_sketches_each_feature():
    from sklearn.datasets import load_iris

    x = load_iris().data
    reference = profile({"x": x}, {"y": x[:, :1]})
    assert reference["rows"] == 150
    features = reference["inputs"]["x"]["features"]
    assert len(features) == 4
    for feature, column in zip(features, x.T):
        assert feature["edges"][0] == column.min() and feature["edges"][-1] == column.max()
        assert sum(feature["fractions"]) == pytest.approx(1.0)
        assert feature["mean"] == pytest.approx(column.mean())


@pytest.mark.parametrize("reference", [
    {"inputs": {}}, {"rows": 0, "inputs": {}, "outputs": {}},
    {"rows": 3, "inputs": {"x": {"features": [{"edges": [0, float("nan")],
                                                "fractions": [1.0]}]}}, "outputs": {}},
    {"rows": 3, "inputs": {"x": {"features": [{"edges": [0, 1, 2], "fractions": [1.0]}]}},
     "outputs": {}},
    [1, 2],
])
def test_a_malformed_reference_is_refused(v1_iris, reference):
    with pytest.raises(ArtifactError, match="reference|Reference"):
        write_reference(v1_iris, reference)
    assert read_manifest(v1_iris).format_version == 1  # nothing was written


@pytest.mark.parametrize(("field", "value", "match"), [
    ("variant", {"transforms": []}, "variant"),
    ("variant", {"name": "int8", "transforms": ["quantize"]}, "transform"),
    ("lineage", {"parents": "x"}, "lineage"),
    ("lineage", ["iris:1"], "Lineage"),
])
def test_bad_variant_or_lineage_is_refused(tmp_path, field, value, match):
    with pytest.raises(ArtifactError, match=match):
        save_artifact(_mlp(), tmp_path / "m", **{field: value})
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(("change", "match"), [
    ({"format_version": "2"}, "format_version"),
    ({"format_version": 99}, "newer Lepton"),
    ({"runtime": {"files": []}}, "runtime"),
    ({"runtime": "torch"}, "runtime"),
    ({"lineage": {"parent": "a", "owner": "me"}}, "lineage"),
    ({"signature": {"inputs": [{"name": "x"}]}}, "malformed"),
    ({"signature": {"inputs": [{"name": "x", "shape": [-1, 4], "datatype": "STRING"}]}},
     "unsupported datatype"),
    ({"signature": []}, "signature"),
])
def test_a_corrupt_manifest_is_refused_with_the_field_named(v1_iris, change, match):
    path = v1_iris / "lepton.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ArtifactError, match=match):
        read_manifest(v1_iris)


def test_an_unknown_runtime_names_the_known_ones(v1_iris):
    update_manifest(v1_iris, runtime={"name": "tensorrt", "files": ["model.plan"]})
    with pytest.raises(ArtifactError, match=r"runtime this Lepton does not have.*torch"):
        open_runtime(v1_iris)


def test_datatype_of_names_protocol_types_and_refuses_others():
    from lepton.artifact.signature import datatype_of
    from lepton.errors import ShapeError

    assert datatype_of(np.zeros(2, np.float32)) == "FP32"
    assert datatype_of(np.zeros(2, np.int64)) == "INT64"
    with pytest.raises(ShapeError, match="complex64.*astype"):
        datatype_of(np.zeros(2, np.complex64))
