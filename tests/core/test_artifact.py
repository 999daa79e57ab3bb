"""The artifact: round trips of every model kind, atomic writes, and files that must be refused."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest
import torch

from lepton.core import Input, Model, Sequential, layers, load_model, register
from lepton.core.saving import read_document as read_manifest
from lepton.errors import ArtifactError, UnsafeArtifactError


@pytest.fixture()
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images[..., None] / 16.0).astype("float32"), data.target


def _trained_sequential(x, y):
    model = Sequential([layers.Conv2D(8, 3, activation="relu", input_shape=(8, 8, 1)),
                        layers.BatchNormalization(), layers.Flatten(), layers.Dropout(0.1),
                        layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    return model


def test_sequential_round_trip_predicts_identically(tmp_path, digits):
    x, y = digits
    model = _trained_sequential(x, y)
    before = model.predict(x)
    model.save(tmp_path / "digits", metadata={"labels": [str(i) for i in range(10)]})
    loaded = load_model(tmp_path / "digits")
    np.testing.assert_array_equal(loaded.predict(x), before)
    assert loaded.metadata["labels"][3] == "3"
    # compile settings travel too: evaluate works straight after loading
    loss, accuracy = loaded.evaluate(x, y, verbose=0)
    assert accuracy > 0.5
    manifest = read_manifest(tmp_path / "digits")
    assert manifest["signature"]["inputs"][0]["shape"] == [-1, 8, 8, 1]
    assert manifest["signature"]["outputs"][0]["shape"] == [-1, 10]
    assert sorted(p.name for p in (tmp_path / "digits").iterdir()) == ["lepton.json",
                                                                        "weights.safetensors"]


def test_sequential_starting_with_input_trains_and_round_trips(tmp_path, digits):
    x, y = digits
    flat = x.reshape(len(x), -1)
    model = Sequential([Input((64,)), layers.Dense(16, activation="relu"),
                        layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(flat, y, epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "mlp")
    np.testing.assert_array_equal(load_model(tmp_path / "mlp").predict(flat), model.predict(flat))


def test_functional_multi_input_multi_output_round_trip(tmp_path, digits):
    x, y = digits
    image = Input((8, 8, 1), name="image")
    extra = Input((3,), name="extra")
    h = layers.Flatten()(layers.Conv2D(4, 3, activation="relu")(image))
    h = layers.Concatenate()([h, layers.Dense(4, activation="relu")(extra)])
    digit = layers.Dense(10, activation="softmax", name="digit")(h)
    big = layers.Dense(1, activation="sigmoid", name="big")(h)
    model = Model([image, extra], [digit, big])
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy",
                                          "binary_crossentropy"],
                  metrics={"digit": ["accuracy"], "big": ["auc"]}, loss_weights=[1.0, 0.5])
    side = np.random.default_rng(0).normal(size=(len(x), 3)).astype("float32")
    is_big = (y >= 5).astype("float32")
    history = model.fit([x, side], [y, is_big], epochs=2, batch_size=64, verbose=0)
    assert {"digit_accuracy", "big_auc"} <= set(history.history)
    before = model.predict([x, side])
    model.save(tmp_path / "multi")
    reference = json.loads((tmp_path / "multi" / "lepton.json").read_text())["reference"]
    assert set(reference["inputs"]) == {"image", "extra"}  # fit's rows, both inputs
    assert reference["embeddings"]["rows"] == 256  # the head's input, from both inputs
    loaded = load_model(tmp_path / "multi")
    after = loaded.predict({"image": x, "extra": side})
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def test_subclassed_model_round_trip(tmp_path, digits):
    @register(name="tests.DigitNet")
    class DigitNet(Model):
        def __init__(self, hidden=32, **kwargs):
            super().__init__(**kwargs)
            self.flat = layers.Flatten()
            self.hidden = layers.Dense(hidden, activation="relu")
            self.out = layers.Dense(10)

        def call(self, inputs):
            return self.out(self.hidden(self.flat(inputs)))

    x, y = digits
    model = DigitNet(hidden=16)
    model.compile(optimizer="adam", metrics=["accuracy"],
                  loss=__import__("lepton.core.losses", fromlist=["x"])
                  .SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "sub")
    loaded = load_model(tmp_path / "sub")
    assert type(loaded) is DigitNet and loaded.hidden.units == 16
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_save_replaces_atomically_and_keeps_the_old_one_on_failure(tmp_path, digits,
                                                                    monkeypatch):
    x, y = digits
    model = _trained_sequential(x, y)
    model.save(tmp_path / "m")
    good = (tmp_path / "m" / "weights.safetensors").read_bytes()
    import lepton.core.saving as artifact

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifact, "write_bytes", broken)
    with pytest.raises(OSError, match="No space left"):
        model.save(tmp_path / "m")
    assert (tmp_path / "m" / "weights.safetensors").read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary left behind
    load_model(tmp_path / "m")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    raw = tmp_path / "model.pkl"
    raw.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(UnsafeArtifactError, match="pickle"):
        load_model(raw)
    # the same payload zipped the way torch.save does it
    zipped = tmp_path / "model.pt"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_Payload(str(marker))))
    with pytest.raises(UnsafeArtifactError):
        load_model(zipped)
    # a directory holding only a pickle, and a pickle posing as the weights file
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(UnsafeArtifactError):
        load_model(folder)
    assert not marker.exists()


def test_pickle_posing_as_weights_is_refused(tmp_path, digits):
    x, y = digits
    _trained_sequential(x, y).save(tmp_path / "m")
    marker = tmp_path / "pwned"
    (tmp_path / "m" / "weights.safetensors").write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(UnsafeArtifactError):
        load_model(tmp_path / "m")
    assert not marker.exists()


def test_missing_and_corrupt_artifacts(tmp_path, digits):
    with pytest.raises(ArtifactError, match="No model artifact at"):
        load_model(tmp_path / "nowhere")
    x, y = digits
    _trained_sequential(x, y).save(tmp_path / "m")
    weights = tmp_path / "m" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_model(tmp_path / "m")
    manifest = tmp_path / "m" / "lepton.json"
    manifest.write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt"):
        load_model(tmp_path / "m")
    manifest.write_text(json.dumps({"format": "something.else"}))
    with pytest.raises(ArtifactError, match="not a Lepton model manifest"):
        load_model(tmp_path / "m")


def test_malformed_safetensors_header_is_an_error(tmp_path, digits):
    x, y = digits
    _trained_sequential(x, y).save(tmp_path / "m")
    weights = tmp_path / "m" / "weights.safetensors"
    weights.write_bytes((2**40).to_bytes(8, "little") + b"{garbage")
    manifest = json.loads((tmp_path / "m" / "lepton.json").read_text())
    manifest["checksums"] = {}
    (tmp_path / "m" / "lepton.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="not valid safetensors"):
        load_model(tmp_path / "m")


def test_unregistered_custom_class_names_the_fix(tmp_path):
    model = Sequential([layers.Dense(2, input_shape=(3,))])
    model.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "lepton.json").read_text())
    manifest["model"]["config"]["layers"][0]["class_name"] = "NotImportedLayer"
    (tmp_path / "m" / "lepton.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="@lepton.core.register"):
        load_model(tmp_path / "m")


def test_lepton_core_is_the_same_objects_as_lepton_core():
    import lepton.core
    import lepton_core
    import lepton_core.layers
    from lepton_core.layers import Dense
    from lepton_core.optimizers import Adam

    assert lepton_core.Sequential is lepton.core.Sequential
    assert Dense is lepton.core.layers.Dense
    assert Adam is lepton.core.optimizers.Adam
    assert torch.is_tensor(Dense(2)(torch.zeros(1, 3)))
