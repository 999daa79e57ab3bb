"""ResNet18, ResNet34 and ResNet50 (He et al. 2016) from Lepton layers, laid out as
torchvision's ``resnet18/34/50`` (v1.5: ResNet50 strides in its 3x3 convolution) so their
weights load key for key. Layer names are torchvision's paths with ``_`` for ``.``."""

from __future__ import annotations

from typing import Any

from lepton.core.applications.common import check_arguments, finish, pool
from lepton.core.applications.imagenet import decode_predictions, preprocess_input
from lepton.core.applications.weights import WeightMap

__all__ = ["ResNet18", "ResNet34", "ResNet50", "decode_predictions", "preprocess_input"]

BN = {"momentum": 0.9, "epsilon": 1e-5}
WIDTHS = (64, 128, 256, 512)


def _conv_bn(x: Any, wmap: WeightMap, conv_key: str, bn_key: str, filters: int, kernel: int,
             stride: int = 1, relu: bool = True) -> Any:
    from lepton.core import layers as L

    conv = L.Conv2D(filters, kernel, strides=stride, padding=(kernel - 1) // 2,
                    use_bias=False, name=conv_key.replace(".", "_"))
    bn = L.BatchNormalization(**BN, name=bn_key.replace(".", "_"))
    x = bn(conv(x))
    wmap.add(conv_key, conv, "conv")
    wmap.add(bn_key, bn, "bn")
    return L.ReLU(inplace=True, name=f"{bn_key.replace('.', '_')}_relu")(x) if relu else x


def _block(x: Any, wmap: WeightMap, prefix: str, width: int, stride: int,
           bottleneck: bool) -> Any:
    """BasicBlock (two 3x3) or Bottleneck (1x1, 3x3, 1x1 to 4x width), plus the shortcut."""
    from lepton.core import layers as L

    out_channels = width * 4 if bottleneck else width
    shortcut = x
    if stride != 1 or int(x.shape[-1]) != out_channels:
        shortcut = _conv_bn(x, wmap, f"{prefix}.downsample.0", f"{prefix}.downsample.1",
                            out_channels, 1, stride, relu=False)
    if bottleneck:
        y = _conv_bn(x, wmap, f"{prefix}.conv1", f"{prefix}.bn1", width, 1)
        y = _conv_bn(y, wmap, f"{prefix}.conv2", f"{prefix}.bn2", width, 3, stride)
        y = _conv_bn(y, wmap, f"{prefix}.conv3", f"{prefix}.bn3", out_channels, 1, relu=False)
    else:
        y = _conv_bn(x, wmap, f"{prefix}.conv1", f"{prefix}.bn1", width, 3, stride)
        y = _conv_bn(y, wmap, f"{prefix}.conv2", f"{prefix}.bn2", width, 3, relu=False)
    name = prefix.replace(".", "_")
    return L.ReLU(inplace=True, name=f"{name}_out")(L.Add(name=f"{name}_add")([shortcut, y]))


def _resnet(owner: str, depths: tuple[int, ...], bottleneck: bool, include_top: bool,
            weights: Any, input_shape: Any, pooling: str | None, classes: int,
            classifier_activation: str | None, file_name: str) -> Any:
    from lepton.core import layers as L
    from lepton.core.models import Model

    shape = check_arguments(owner, include_top, weights, input_shape, pooling, classes)
    wmap = WeightMap(owner, ("fc.",), "fc.weight")
    inputs = L.Input(shape, name="input_layer")
    x = _conv_bn(inputs, wmap, "conv1", "bn1", 64, 7, 2)
    # torch pads its max pooling with -inf; after a ReLU, zeros are the same
    x = L.MaxPooling2D(3, strides=2, name="maxpool")(L.ZeroPadding2D(1, name="maxpool_pad")(x))
    for stage, (depth, width) in enumerate(zip(depths, WIDTHS), start=1):
        for i in range(depth):
            stride = 2 if stage > 1 and i == 0 else 1
            x = _block(x, wmap, f"layer{stage}.{i}", width, stride, bottleneck)
    if include_top:
        x = L.GlobalAveragePooling2D(name="avgpool")(x)
        x = wmap.add("fc", L.Dense(classes, activation=classifier_activation, name="fc"),
                     "dense")(x)
    else:
        x = pool(x, pooling)
    model = Model(inputs, x, name=owner.lower())
    finish(owner, file_name, wmap, weights, include_top, classes,
           hint=f"pass torchvision's {owner.lower()} weights (ResNet18/34 files hold "
                "BasicBlocks, ResNet50 Bottlenecks: each fits only its own depth)")
    return model


def ResNet18(include_top: bool = True, weights: Any = None, input_shape: Any = None,
             pooling: str | None = None, classes: int = 1000,
             classifier_activation: str | None = "softmax") -> Any:
    """ResNet-18; ``weights`` as for MobileNetV2 ('imagenet': ``resnet18.safetensors``)."""
    return _resnet("ResNet18", (2, 2, 2, 2), False, include_top, weights, input_shape, pooling,
                   classes, classifier_activation, "resnet18.safetensors")


def ResNet34(include_top: bool = True, weights: Any = None, input_shape: Any = None,
             pooling: str | None = None, classes: int = 1000,
             classifier_activation: str | None = "softmax") -> Any:
    """ResNet-34 ('imagenet': ``resnet34.safetensors``)."""
    return _resnet("ResNet34", (3, 4, 6, 3), False, include_top, weights, input_shape, pooling,
                   classes, classifier_activation, "resnet34.safetensors")


def ResNet50(include_top: bool = True, weights: Any = None, input_shape: Any = None,
             pooling: str | None = None, classes: int = 1000,
             classifier_activation: str | None = "softmax") -> Any:
    """ResNet-50 v1.5 ('imagenet': ``resnet50.safetensors``)."""
    return _resnet("ResNet50", (3, 4, 6, 3), True, include_top, weights, input_shape, pooling,
                   classes, classifier_activation, "resnet50.safetensors")
