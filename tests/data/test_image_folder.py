"""Keras' image utilities (issue 11 §5): load_img, img_to_array and
image_dataset_from_directory on a real folder of BreastMNIST PNGs, fed to fit / evaluate /
predict, with a non-image file and a corrupt image skipped by name."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from lepton.data import image_dataset_from_directory, img_to_array, load_img
from lepton.errors import ConfigError, DataError, LeptonWarning
from tests.conftest import FIXTURES

# the skipped files warn in every test; test_dataset_streams... asserts what they say
pytestmark = pytest.mark.filterwarnings("ignore::lepton.errors.LeptonWarning")


@pytest.fixture
def folder(tmp_path):
    data = np.load(FIXTURES / "breastmnist.npz")
    root = tmp_path / "breast"
    for i, (img, label) in enumerate(zip(data["train_images"][:60],
                                         data["train_labels"].reshape(-1)[:60], strict=True)):
        d = root / ("malignant" if int(label) == 0 else "benign")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i}.png")
    (root / "benign" / "notes.txt").write_text("not an image")
    (root / "malignant" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def test_load_img_and_img_to_array(folder):
    path = next((folder / "benign").glob("*.png"))
    img = load_img(path, target_size=(32, 40))
    assert img.size == (40, 32) and img.mode == "RGB"  # grayscale expanded for RGB nets
    arr = img_to_array(img)
    assert arr.shape == (32, 40, 3) and arr.dtype == np.float32 and arr.max() <= 255
    assert np.array_equal(arr[..., 0], arr[..., 2])
    gray = img_to_array(load_img(path, color_mode="grayscale"))
    assert gray.shape == (28, 28, 1)
    with pytest.raises(DataError, match="notes.txt"):
        load_img(folder / "benign" / "notes.txt")
    with pytest.raises(ConfigError, match="color_mode"):
        load_img(path, color_mode="cmyk")


def test_dataset_streams_a_folder_into_fit_evaluate_and_predict(folder):
    from lepton.core import Sequential
    from lepton.core import layers as L

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LeptonWarning)
        train, val = image_dataset_from_directory(
            folder, image_size=(32, 32), batch_size=16, validation_split=0.25,
            subset="both", seed=7)
    messages = " ".join(str(w.message) for w in caught)
    assert "notes.txt" in messages and "broken.png" in messages
    assert "expanded to 3 channels" in messages
    assert train.class_names == ["benign", "malignant"]
    assert len(train.file_paths) + len(val.file_paths) == 60
    assert not set(train.file_paths) & set(val.file_paths)
    x, y = next(iter(train))
    assert x.shape == (16, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int64
    model = Sequential([L.Rescaling(1 / 255, input_shape=(32, 32, 3)),
                        L.Conv2D(8, 3, activation="relu"), L.GlobalAveragePooling2D(),
                        L.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(train.map(lambda x, y: (x * 1.0, y)), validation_data=val, epochs=2,
                        verbose=0)
    assert len(history.history["val_loss"]) == 2
    loss, accuracy = model.evaluate(val, verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    assert model.predict(val).shape == (len(val.file_paths), 2)


def test_dataset_label_modes_and_bad_arguments(folder):
    cat = image_dataset_from_directory(folder, label_mode="categorical", image_size=28,
                                       color_mode="grayscale", shuffle=False, batch_size=8)
    x, y = next(iter(cat))
    assert x.shape == (8, 28, 28, 1) and y.shape == (8, 2) and set(y.sum(1)) == {1.0}
    _, yb = next(iter(image_dataset_from_directory(folder, label_mode="binary",
                                                   image_size=28)))
    assert yb.shape[1:] == (1,)
    images = next(iter(image_dataset_from_directory(folder, labels=None, image_size=28)))
    assert images.shape[1:] == (28, 28, 3)
    with pytest.raises(ConfigError, match="seed"):
        image_dataset_from_directory(folder, validation_split=0.2, subset="training")
    with pytest.raises(ConfigError, match="image_size"):
        image_dataset_from_directory(folder, image_size=(0, 32))
    with pytest.raises(DataError, match="not a folder"):
        image_dataset_from_directory(folder / "missing")
