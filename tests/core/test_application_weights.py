"""ResNet18/34/50 and VGG16 weights in torchvision's key layout (issue 11, items 2, 4 and 8).

No ResNet or VGG weights file ships, so each test writes torchvision's network by hand in
plain PyTorch (torchvision's module names, so ``state_dict()`` has its keys), fills it with
seeded random weights and BatchNormalization statistics far from their defaults (a
BatchNormalization tensor put in the wrong place then changes the logits), saves it with
``safetensors.torch.save_file`` and checks that Lepton's network, loading that file, gives
the same logits on channels-last input as the plain one does on NCHW input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lepton.core import applications as A
from lepton.errors import ArtifactError, ConfigError, LeptonError


# -- the references: torchvision's resnet18/34/50 and vgg16, in plain PyTorch ----------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _downsample(cin, width, stride)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4  # torchvision's v1.5: the stride sits in the 3x3 convolution

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.downsample = _downsample(cin, width * 4, stride)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(y)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


def _downsample(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class TorchResNet(nn.Module):
    def __init__(self, block: type, depths: tuple[int, ...], classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for stage, (depth, width) in enumerate(zip(depths, (64, 128, 256, 512)), start=1):
            blocks = []
            for i in range(depth):
                blocks.append(block(cin, width, 2 if stage > 1 and i == 0 else 1))
                cin = width * block.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, classes)

    def features(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for stage in range(1, 5):
            x = getattr(self, f"layer{stage}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


class TorchVGG16(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for n, width in zip((2, 2, 3, 3, 3), (64, 128, 256, 512, 512)):
            for _ in range(n):
                layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True)]
                cin = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def torch_resnet18() -> TorchResNet:
    return TorchResNet(BasicBlock, (2, 2, 2, 2))


def torch_resnet50() -> TorchResNet:
    return TorchResNet(Bottleneck, (3, 4, 6, 3))


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Seeded weights, with BatchNormalization affine values and running statistics far
    from 1/0 and different per channel, so a swapped or dropped BN tensor shows."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.normal_(module.bias, std=0.1)
        elif isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.weight.uniform_(0.3, 1.0)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(1234)
    return model.eval()


def saved(model: nn.Module, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def images(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Seeded channels-last float images, roughly as preprocess_input leaves photos."""
    return np.random.default_rng(seed).normal(size=(n, height, width, 3)).astype(np.float32)


def reference(model: nn.Module, x: np.ndarray, fn: Callable | None = None) -> np.ndarray:
    """The plain network (or ``fn``) on NCHW input."""
    with torch.no_grad():
        return (fn or model)(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()


def assert_same(ours: np.ndarray, expected: np.ndarray, argmax: bool = True) -> None:
    assert ours.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(ours - expected).max() <= 1e-4 * scale
    if argmax:
        assert (ours.argmax(1) == expected.argmax(1)).all()


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    model = randomise(torch_resnet18(), seed=18)
    return model, saved(model, tmp_path_factory.mktemp("r18") / "resnet18.safetensors")


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    model = randomise(torch_resnet50(), seed=50)
    return model, saved(model, tmp_path_factory.mktemp("r50") / "resnet50.safetensors")


def test_references_have_torchvision_sizes_and_keys():
    r18, r50 = torch_resnet18(), torch_resnet50()
    assert param_count(r18) == 11_689_512
    assert param_count(r50) == 25_557_032
    assert param_count(TorchResNet(BasicBlock, (3, 4, 6, 3))) == 21_797_672
    keys = set(r50.state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight",
            "layer1.0.downsample.1.num_batches_tracked", "layer4.2.conv3.weight",
            "fc.bias"} <= keys
    assert "layer1.0.downsample.0.weight" not in r18.state_dict()  # 64 -> 64, stride 1
    assert "layer2.0.downsample.1.weight" in r18.state_dict()


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_loads_torchvision_keys_and_gives_the_reference_logits(
        name, resnet18_file, resnet50_file):
    reference_model, path = {"resnet18": resnet18_file, "resnet50": resnet50_file}[name]
    build = {"resnet18": A.ResNet18, "resnet50": A.ResNet50}[name]
    x = images(2, 64, 64)
    ours = build(weights=path, input_shape=(64, 64, 3), classifier_activation=None)
    assert_same(ours.predict(x), reference(reference_model, x))
    # the backbone alone, pooled, at an odd non-square size (padding and stride rounding)
    x = images(2, 57, 70, seed=1)
    base = build(weights=path, include_top=False, pooling="avg", input_shape=(57, 70, 3))
    assert_same(base.predict(x), reference(reference_model, x, reference_model.features),
                argmax=False)


# -- VGG16: its classifier fixes the input at 224x224 and holds 120M parameters ---------------
@pytest.mark.slow
def test_vgg16_loads_torchvision_keys_and_gives_the_reference_logits(tmp_path):
    reference_model = randomise(TorchVGG16(), seed=16)
    assert param_count(reference_model) == 138_357_544
    path = saved(reference_model, tmp_path / "vgg16.safetensors")
    x = images(1, 224, 224)
    ours = A.VGG16(weights=path, classifier_activation=None)
    # classifier.0 sees torch's (C, H, W) flattening; ours is channels-last: remapped on load
    assert_same(ours.predict(x), reference(reference_model, x))
    del ours
    x = images(2, 48, 80, seed=1)
    base = A.VGG16(weights=path, include_top=False, pooling="avg", input_shape=(48, 80, 3))

    def pooled(t):
        return F.adaptive_avg_pool2d(reference_model.features(t), 1).flatten(1)

    assert_same(base.predict(x), reference(reference_model, x, pooled), argmax=False)
    with pytest.raises(ConfigError) as info:  # the file's classifier has 1000 classes
        A.VGG16(weights=path, classes=10)
    for word in ("classes=10", "1000 classes", "include_top=False", "Fix:"):
        assert word in str(info.value)


# -- bad input: files for another depth, classes, sizes (item 8) ------------------------------
def _message(make, error=LeptonError) -> str:
    with pytest.raises(error) as info:
        make()
    return str(info.value)


def test_resnet18_file_in_resnet34_lists_the_missing_blocks(resnet18_file):
    text = _message(lambda: A.ResNet34(weights=resnet18_file[1], input_shape=(32, 32, 3)),
                    ArtifactError)
    for word in ("does not fit ResNet34", "missing key(s): layer1.2.bn1.bias",
                 "Expected:", "Received:", "Fix:", "BasicBlocks"):
        assert word in text
    assert "unexpected" not in text and "mis-shaped" not in text


def test_resnet18_file_in_resnet50_lists_missing_and_misshaped_keys(resnet18_file):
    text = _message(lambda: A.ResNet50(weights=resnet18_file[1], input_shape=(32, 32, 3)),
                    ArtifactError)
    for word in ("does not fit ResNet50", "missing key(s): layer1.0.bn3.bias",
                 "mis-shaped key(s): fc.weight: file (1000, 512), model (1000, 2048)",
                 "Fix:", "Bottlenecks"):
        assert word in text
    # with include_top=False the backbone's keys are still checked
    text = _message(lambda: A.ResNet50(weights=resnet18_file[1], include_top=False,
                                       input_shape=(32, 32, 3)), ArtifactError)
    assert "layer1.0.conv1.weight: file (64, 64, 3, 3), model (64, 64, 1, 1)" in text


def test_resnet50_file_in_resnet18_lists_unexpected_keys(resnet50_file):
    text = _message(lambda: A.ResNet18(weights=resnet50_file[1], input_shape=(32, 32, 3)),
                    ArtifactError)
    for word in ("does not fit ResNet18", "unexpected key(s): layer1.0.bn3.bias",
                 "mis-shaped key(s)", "Fix:"):
        assert word in text


def test_resnet_classes_that_do_not_match_the_file_name_both(resnet18_file):
    text = _message(lambda: A.ResNet18(weights=resnet18_file[1], classes=10,
                                       input_shape=(32, 32, 3)), ConfigError)
    for word in ("classes=10", "1000 classes", "Expected: classes=1000",
                 "Received: classes=10", "include_top=False"):
        assert word in text
    # a new head on the backbone is the documented way: the file's fc is then ignored
    base = A.ResNet18(weights=resnet18_file[1], include_top=False, pooling="avg", classes=10,
                      input_shape=(32, 32, 3))
    assert base.predict(images(1, 32, 32)).shape == (1, 512)


@pytest.mark.parametrize("build", [A.VGG16, A.ResNet18, A.ResNet50])
def test_input_too_small_for_the_backbone(build):
    text = _message(lambda: build(include_top=False, input_shape=(16, 16, 3)), ConfigError)
    for word in ("too small", "at least 32", "Received: input_shape=(16, 16, 3)", "Fix:"):
        assert word in text


def test_vgg16_pretrained_top_needs_224(tmp_path):
    text = _message(lambda: A.VGG16(weights=tmp_path / "vgg16.safetensors",
                                    input_shape=(64, 64, 3)), ConfigError)
    for word in ("224x224", "Received: input_shape=(64, 64, 3)", "include_top=False"):
        assert word in text
