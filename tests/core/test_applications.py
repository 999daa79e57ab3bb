"""Pretrained backbones (issue 11): parity with the reference network on real photos, the
documented transfer example, freezing, weights files that do not fit, and fine-tuning from
the command line into an artifact the server's predictor serves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lepton.core import applications as A
from lepton.errors import ArtifactError, ConfigError, UnsafeArtifactError
from tests.conftest import FIXTURES, large_file

WEIGHTS = "models/mobilenet_v2_imagenet.safetensors"


# -- the reference: torchvision's MobileNetV2 written in plain PyTorch ----------------------
class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups,
                                   bias=False), nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int):
        super().__init__()
        hidden, self.residual = cin * t, stride == 1 and cin == cout
        layers = [] if t == 1 else [ConvBNReLU(cin, hidden, 1)]
        layers += [ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class TorchMobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        feats, cin = [ConvBNReLU(3, 32, stride=2)], 32
        for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
            for i in range(n):
                feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        feats.append(ConvBNReLU(cin, 1280, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def sample_photos(size: int = 224) -> np.ndarray:
    """scikit-learn's two sample photos, resized (short side 256) and centre-cropped."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = []
    for array in load_sample_images().images:
        pic = Image.fromarray(array)
        scale = 256 / min(pic.size)
        pic = pic.resize((round(pic.width * scale), round(pic.height * scale)), Image.BILINEAR)
        left, top = (pic.width - size) // 2, (pic.height - size) // 2
        out.append(np.asarray(pic.crop((left, top, left + size, top + size))))
    return np.stack(out)


@pytest.fixture(scope="module")
def weights_file():
    return large_file(WEIGHTS)


def test_mobilenet_v2_gives_the_reference_logits_on_real_photos(weights_file):
    from safetensors.torch import load_file

    reference = TorchMobileNetV2()
    reference.load_state_dict(load_file(str(weights_file)))  # strict: torchvision's keys
    reference.eval()
    ours = A.MobileNetV2(weights=weights_file, classifier_activation=None)
    x = A.preprocess_input(sample_photos())
    with torch.no_grad():
        expected = reference(torch.from_numpy(x).permute(0, 3, 1, 2))
    logits = ours.predict(x)
    assert np.abs(logits - expected.numpy()).max() <= 1e-4
    assert (logits.argmax(1) == expected.numpy().argmax(1)).all()
    top = A.decode_predictions(A.MobileNetV2(weights=weights_file).predict(x), top=3)
    assert top[0][0][:2] == ("n03877845", "palace")  # china.jpg: the Summer Palace
    assert len(top) == 2 and all(len(row) == 3 for row in top)
    # the folded-BatchNormalization copy computes the same, with fewer steps
    fused = A.fold_batchnorm(ours)
    assert len(fused.graph.steps) < len(ours.graph.steps)
    np.testing.assert_allclose(fused.predict(x), logits, atol=1e-3)


def test_applications_match_torchvision_sizes_and_pool_as_asked():
    counts = {A.ResNet18: 11_689_512, A.ResNet34: 21_797_672, A.ResNet50: 25_557_032}
    for build, expected in counts.items():
        assert build(input_shape=(32, 32, 3)).count_params() == expected
    assert A.MobileNetV2(input_shape=(32, 32, 3)).count_params() == 3_504_872
    assert A.VGG16(include_top=False, input_shape=(32, 32, 3)).count_params() == 14_714_688
    x = np.zeros((1, 64, 64, 3), np.float32)
    assert A.MobileNetV2(include_top=False, input_shape=(64, 64, 3)).predict(x).shape == \
        (1, 2, 2, 1280)
    assert A.ResNet18(include_top=False, input_shape=(64, 64, 3), pooling="max").predict(
        x).shape == (1, 512)
    assert A.MobileNetV2(alpha=0.5, include_top=False, pooling="avg",
                         input_shape=(64, 64, 3)).predict(x).shape == (1, 1280)


def test_pretrained_backbone_is_an_ordinary_model(tmp_path, weights_file):
    from lepton.core import load_model

    model = A.MobileNetV2(weights=weights_file, input_shape=(96, 96, 3))
    x = A.preprocess_input(sample_photos(96))
    model.save(tmp_path / "m")
    np.testing.assert_allclose(load_model(tmp_path / "m").predict(x), model.predict(x),
                               atol=1e-6)
    import lepton_core

    assert lepton_core.applications.MobileNetV2 is A.MobileNetV2


@pytest.mark.slow
def test_documented_vgg16_transfer_example_runs_as_written():
    from lepton_core.applications import VGG16
    from lepton_core.layers import Dense, Flatten
    from lepton_core.models import Model

    rng = np.random.default_rng(0)
    x_train = rng.uniform(0, 255, (4, 224, 224, 3)).astype("float32")
    y_train = np.eye(2, dtype="float32")[[0, 1, 0, 1]]

    base_model = VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    x = Flatten()(base_model.output)
    x = Dense(1024, activation="relu")(x)
    predictions = Dense(2, activation="softmax")(x)
    model = Model(inputs=base_model.input, outputs=predictions)
    base_model.trainable = False
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    frozen = base_model.layers[0].kernel.detach().clone()
    head = model.layers[-1].kernel.detach().clone()
    model.fit(x_train, y_train, epochs=1, batch_size=2, verbose=0)
    out = model.predict(x_train)
    assert out.shape == (4, 2) and np.allclose(out.sum(1), 1, atol=1e-5)
    assert torch.equal(base_model.layers[0].kernel, frozen)
    assert not torch.equal(model.layers[-1].kernel, head)
    text = model.summary(print_fn=lambda _t: None)
    assert "Trainable: 25,693,186" in text and "Non-trainable: 14,714,688" in text


def test_frozen_backbone_batch_norm_runs_in_inference_mode(weights_file):
    from lepton.core import Model
    from lepton.core import layers as L

    base = A.MobileNetV2(weights=weights_file, include_top=False, pooling="avg",
                         input_shape=(64, 64, 3))
    base.trainable = False
    model = Model(base.input, L.Dense(2, activation="softmax")(base.output))
    bn = base.get_layer("bn_Conv1")
    stats = bn.moving_mean.clone()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(8, 64, 64, 3)).astype("float32"), np.array([0, 1] * 4),
              epochs=1, batch_size=4, verbose=0)
    assert torch.equal(bn.moving_mean, stats)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 1280 * 2 + 2


@pytest.mark.parametrize("case", ["architecture", "width", "small", "classes", "imagenet",
                                  "gray", "pickle"])
def test_bad_backbone_arguments_say_what_expected_received_and_fix(case, tmp_path,
                                                                   monkeypatch, weights_file):
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    make, error, words = {
        "architecture": (lambda: A.ResNet18(weights=weights_file, input_shape=(32, 32, 3)),
                         ArtifactError, ["does not fit ResNet18", "missing key(s): bn1.bias",
                                         "unexpected key(s): classifier.1.bias", "Fix:"]),
        "width": (lambda: A.MobileNetV2(alpha=0.5, weights=weights_file,
                                        input_shape=(32, 32, 3)),
                  ArtifactError, ["mis-shaped", "features.0.0.weight: file (32, 3, 3, 3), "
                                  "model (16, 3, 3, 3)", "alpha=0.5"]),
        "small": (lambda: A.MobileNetV2(input_shape=(28, 28, 3)), ConfigError,
                  ["too small", "at least 32", "Received: input_shape=(28, 28, 3)", "Fix:"]),
        "classes": (lambda: A.MobileNetV2(weights=weights_file, classes=10,
                                          input_shape=(32, 32, 3)),
                    ConfigError, ["classes=10", "1000 classes", "include_top=False"]),
        "imagenet": (lambda: A.ResNet50(weights="imagenet"), ArtifactError,
                     ["never downloads", "resnet50.safetensors", "LEPTON_HOME"]),
        "gray": (lambda: A.MobileNetV2(weights=weights_file, input_shape=(64, 64, 1)),
                 ConfigError, ["RGB", "color_mode='rgb'"]),
        "pickle": (lambda: A.MobileNetV2(weights=_pickle(tmp_path)), UnsafeArtifactError,
                   ["pickle"]),
    }[case]
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value)


def _pickle(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"features.0.0.weight": torch.zeros(1)}, path)
    return path


def _breast_folder(root, n_train=48, n_other=16):
    from PIL import Image

    data = np.load(FIXTURES / "breastmnist.npz")
    for split, n in (("train", n_train), ("val", n_other), ("test", n_other)):
        for i, (img, label) in enumerate(zip(data[f"{split}_images"][:n],
                                             data[f"{split}_labels"].reshape(-1)[:n])):
            folder = root / split / ("malignant" if int(label) == 0 else "benign")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i}.png")
    return root


@pytest.mark.slow
def test_lepton_train_fine_tunes_a_backbone_into_a_served_artifact(tmp_path, monkeypatch,
                                                                    capsys, weights_file):
    from lepton.artifact.predictor import Predictor
    from lepton.cli import main

    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    root = _breast_folder(tmp_path / "breast")
    out = tmp_path / "model"
    assert main(["train", "--data", str(root), "--model", "mobilenetv2", "--weights",
                 str(weights_file), "--image-size", "32", "--epochs", "2", "--out",
                 str(out)]) == 0
    captured = capsys.readouterr()
    assert "registered: model:1" in captured.out
    assert "pretrained backbone" in captured.err and "unfrozen" in captured.err
    meta = json.loads((out / "lepton.json").read_text())["metadata"]
    pre = meta["preprocessing"]
    assert pre["size"] == [32, 32] and pre["channels"] == 3
    assert pre["mean"] == list(A.imagenet.MEAN) and pre["std"] == list(A.imagenet.STD)
    plan = meta["training"]["config"]["plan"]  # the small-set recipe: features, then the top
    assert plan["head"] == "lbfgs" and plan["fine_tune_from"] == "block_13_expand"
    assert plan["fine_tune_bn"] is False and plan["augment"] is False
    assert "fit by L-BFGS" in captured.err
    predictor = Predictor.from_artifact(out)  # what the server loads
    raw = next((root / "test").rglob("*.png")).read_bytes()
    answer = predictor.predict_records([raw])[0]
    assert set(answer["probabilities"]) == {"benign", "malignant"}
    # --model auto takes the backbone when a weights file is in $LEPTON_HOME/weights ...
    (tmp_path / "home" / "weights").mkdir(parents=True)
    (tmp_path / "home" / "weights" / "mobilenet_v2.safetensors").symlink_to(weights_file)
    from lepton.train import transfer

    plan = transfer.transfer_plan("auto", root, None, 32)
    assert plan is not None and "chosen by --model auto" in plan.describe()
    # ... and keeps it only if it beats the small CNN on the same validation images
    auto = tmp_path / "auto"
    assert main(["train", "--data", str(root), "--model", "auto", "--image-size", "32",
                 "--epochs", "2", "--out", str(auto), "--no-register"]) == 0
    err = capsys.readouterr().err
    assert "picked " in err and "mobilenetv2 " in err.split("picked ")[1]
    info = json.loads((auto / "lepton.json").read_text())["metadata"]["report_info"]
    assert "mobilenetv2 (val loss" in info["candidates"] and "cnn" in info["candidates"]
    # ... and the small CNN without one
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "empty"))
    assert transfer.transfer_plan("auto", root, None, None) is None
    with pytest.raises(ConfigError, match="none were found"):
        transfer.transfer_plan("resnet18", root, None, None)
