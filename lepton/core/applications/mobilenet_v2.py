"""MobileNetV2 (Sandler et al. 2018) from Lepton layers, laid out as torchvision's
``mobilenet_v2`` so its weights load key for key; layer names follow Keras' MobileNetV2.

torchvision pads every convolution symmetrically (``padding=(k - 1) // 2``), where Keras
pads stride-2 ones on one side; the layers here use explicit symmetric padding, which is
what the pretrained weights saw.
"""

from __future__ import annotations

from typing import Any

from lepton.core.applications.common import check_arguments, finish, pool
from lepton.core.applications.imagenet import decode_predictions, preprocess_input
from lepton.core.applications.weights import WeightMap
from lepton.errors import ConfigError

__all__ = ["MobileNetV2", "decode_predictions", "preprocess_input"]

# expansion t, output channels c, repeats n, first stride s (the paper's Table 2)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))
BN = {"momentum": 0.9, "epsilon": 1e-5}  # torch's BatchNorm2d defaults, Keras' convention
ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Channels rounded to a multiple of 8, never down by more than 10 % (torchvision's)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn(x: Any, wmap: WeightMap, prefix: str, name: str, filters: int | None,
             kernel: int = 1, stride: int = 1, bn_name: str = "") -> Any:
    """Conv (or depthwise when ``filters`` is None) -> BN -> ReLU6, as torchvision's
    Conv2dNormActivation (``prefix.0`` the convolution, ``prefix.1`` the norm)."""
    from lepton.core import layers as L

    pad = (kernel - 1) // 2
    if filters is None:
        conv = L.DepthwiseConv2D(kernel, strides=stride, padding=pad, use_bias=False, name=name)
    else:
        conv = L.Conv2D(filters, kernel, strides=stride, padding=pad, use_bias=False, name=name)
    bn = L.BatchNormalization(**BN, name=bn_name or f"{name}_BN")
    x = bn(conv(x))
    wmap.add(f"{prefix}.0", conv, "conv")
    wmap.add(f"{prefix}.1", bn, "bn")
    return L.ReLU(6.0, inplace=True, name=f"{name}_relu")(x)


def _block(x: Any, wmap: WeightMap, index: int, in_channels: int, out_channels: int,
           stride: int, expansion: int) -> Any:
    """One inverted residual: expand 1x1 -> depthwise 3x3 -> project 1x1 (+ the input)."""
    from lepton.core import layers as L

    prefix = f"features.{index}.conv"
    name = "expanded_conv" if index == 1 else f"block_{index - 1}"
    inputs, step = x, 0
    if expansion != 1:
        x = _conv_bn(x, wmap, f"{prefix}.{step}", f"{name}_expand", in_channels * expansion)
        step += 1
    x = _conv_bn(x, wmap, f"{prefix}.{step}", f"{name}_depthwise", None, 3, stride)
    conv = L.Conv2D(out_channels, 1, use_bias=False, name=f"{name}_project")
    bn = L.BatchNormalization(**BN, name=f"{name}_project_BN")
    x = bn(conv(x))
    wmap.add(f"{prefix}.{step + 1}", conv, "conv")
    wmap.add(f"{prefix}.{step + 2}", bn, "bn")
    if stride == 1 and in_channels == out_channels:
        x = L.Add(name=f"{name}_add")([inputs, x])
    return x


def MobileNetV2(input_shape: tuple[int, int, int] | None = None, alpha: float = 1.0,
                include_top: bool = True, weights: Any = None, pooling: str | None = None,
                classes: int = 1000, classifier_activation: str | None = "softmax",
                name: str = "mobilenetv2") -> Any:
    """MobileNetV2 as a functional Lepton ``Model``.

    weights: None (random), a safetensors file in torchvision's layout, or 'imagenet' (the
    file ``$LEPTON_HOME/weights/mobilenet_v2.safetensors``; never downloaded). Inputs are
    RGB pixels in [0, 255] after :func:`preprocess_input`. ``include_top=False`` ends at the
    last 1x1 convolution (7x7x1280 at 224), or pools it with ``pooling='avg'|'max'``.
    """
    from lepton.core import layers as L
    from lepton.core.models import Model

    if alpha not in ALPHAS:
        raise ConfigError("MobileNetV2 expected `alpha` to be one of the published widths",
                          expected=f"one of {ALPHAS}", received=f"alpha={alpha!r}")
    shape = check_arguments("MobileNetV2", include_top, weights, input_shape, pooling, classes)
    wmap = WeightMap("MobileNetV2", ("classifier.",), "classifier.1.weight")
    inputs = L.Input(shape, name="input_layer")
    channels = make_divisible(32 * alpha)
    x = _conv_bn(inputs, wmap, "features.0", "Conv1", channels, 3, 2, bn_name="bn_Conv1")
    index = 1
    for t, c, n, s in SETTINGS:
        out = make_divisible(c * alpha)
        for i in range(n):
            x = _block(x, wmap, index, channels, out, s if i == 0 else 1, t)
            channels, index = out, index + 1
    last = make_divisible(1280 * max(1.0, alpha))
    x = _conv_bn(x, wmap, f"features.{index}", "Conv_1", last, bn_name="Conv_1_bn")
    if include_top:
        x = L.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
        x = L.Dropout(0.2, name="top_dropout")(x)  # torchvision's classifier.0
        head = L.Dense(classes, activation=classifier_activation, name="predictions")
        x = wmap.add("classifier.1", head, "dense")(x)
    else:
        x = pool(x, pooling)
    model = Model(inputs, x, name=name)
    file_name = "mobilenet_v2.safetensors" if alpha == 1.0 else \
        f"mobilenet_v2_{alpha:g}.safetensors"
    finish("MobileNetV2", file_name, wmap, weights, include_top, classes,
           hint=f"pass the torchvision mobilenet_v2 file made for width alpha={alpha:g} (a "
                "first convolution of shape "
                f"({make_divisible(32 * alpha)}, 3, 3, 3)), or build with the alpha the file "
                "was made for")
    return model
