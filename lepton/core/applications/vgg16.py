"""VGG16 (Simonyan & Zisserman 2015) from Lepton layers with Keras' layer names, loading
torchvision's ``vgg16`` weights (``features.N`` convolutions, ``classifier.0/3/6``)."""

from __future__ import annotations

from typing import Any

from lepton.core.applications.common import check_arguments, finish, pool
from lepton.core.applications.imagenet import decode_predictions, preprocess_input
from lepton.core.applications.weights import WeightMap

__all__ = ["VGG16", "decode_predictions", "preprocess_input"]

BLOCKS = (2, 2, 3, 3, 3)
WIDTHS = (64, 128, 256, 512, 512)


def VGG16(include_top: bool = True, weights: Any = None, input_tensor: Any = None,
          input_shape: Any = None, pooling: str | None = None, classes: int = 1000,
          classifier_activation: str | None = "softmax") -> Any:
    """VGG16 as a functional Lepton ``Model``; the documented transfer example uses
    ``VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))``. With the top and
    pretrained weights the input must be 224x224 (its first Dense sees a 7x7x512 map).
    ``weights``: None, a path, or 'imagenet' (``$LEPTON_HOME/weights/vgg16.safetensors``)."""
    from lepton.core import layers as L
    from lepton.core.models import Model

    if input_tensor is not None:  # an Input placeholder to build on
        input_shape = tuple(int(d) for d in input_tensor.shape[1:])
    shape = check_arguments("VGG16", include_top, weights, input_shape, pooling, classes,
                            fixed_top=True)
    wmap = WeightMap("VGG16", ("classifier.",), "classifier.6.weight")
    inputs = input_tensor if input_tensor is not None else L.Input(shape, name="input_layer")
    x, index = inputs, 0
    for block, (n, width) in enumerate(zip(BLOCKS, WIDTHS), start=1):
        for i in range(1, n + 1):
            conv = L.Conv2D(width, 3, padding=1, activation="relu", name=f"block{block}_conv{i}")
            x = wmap.add(f"features.{index}", conv, "conv")(x)
            index += 2  # each Conv2d is followed by a ReLU in torchvision's Sequential
        x = L.MaxPooling2D(2, name=f"block{block}_pool")(x)
        index += 1
    if include_top:
        h, w, c = (int(d) for d in x.shape[1:])
        x = L.Flatten(name="flatten")(x)
        fc1 = L.Dense(4096, activation="relu", name="fc1")
        x = wmap.add("classifier.0", fc1, "dense_chw", chw=(c, h, w))(x)
        x = wmap.add("classifier.3", L.Dense(4096, activation="relu", name="fc2"), "dense")(x)
        head = L.Dense(classes, activation=classifier_activation, name="predictions")
        x = wmap.add("classifier.6", head, "dense")(x)
    else:
        x = pool(x, pooling)
    model = Model(inputs, x, name="vgg16")
    finish("VGG16", "vgg16.safetensors", wmap, weights, include_top, classes,
           hint="pass torchvision's vgg16 weights (not vgg16_bn, whose keys hold "
                "BatchNormalization layers)")
    return model
