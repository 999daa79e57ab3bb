"""What every application shares: checking its arguments, the input, the optional top, and
loading weights at the end of the build."""

from __future__ import annotations

from typing import Any

from lepton.core.applications.weights import WeightMap, load_weights, resolve_weights
from lepton.errors import ConfigError

MIN_SIZE = 32


def check_arguments(owner: str, include_top: bool, weights: Any, input_shape: Any,
                    pooling: Any, classes: Any, default_size: int = 224,
                    fixed_top: bool = False) -> tuple[int, int, int]:
    """Validate the Keras-style arguments; returns the input shape (H, W, C)."""
    if pooling not in (None, "avg", "max"):
        raise ConfigError(f"{owner} expected `pooling` None, 'avg' or 'max'",
                          received=f"pooling={pooling!r}")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ConfigError(f"{owner} expected `classes` to be a positive int",
                          received=f"classes={classes!r}")
    shape = tuple(input_shape) if input_shape is not None else (default_size, default_size, 3)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ConfigError(f"{owner} expected `input_shape` as (height, width, channels)",
                          received=f"input_shape={input_shape!r}",
                          fix=f"for example input_shape=({default_size}, {default_size}, 3)")
    if min(shape[:2]) < MIN_SIZE:
        raise ConfigError(
            f"{owner}: input_shape {shape} is too small for the backbone, which downsamples "
            "by 32", expected=f"height and width of at least {MIN_SIZE}",
            received=f"input_shape={shape}",
            fix=f"resize the images up, e.g. image_size=({max(MIN_SIZE, 96)}, "
                f"{max(MIN_SIZE, 96)}) (a pretrained backbone does best near {default_size})")
    if weights is not None and shape[2] != 3:
        raise ConfigError(
            f"{owner}: pretrained weights take RGB images", expected="input_shape=(H, W, 3)",
            received=f"input_shape={shape}",
            fix="load grayscale images with color_mode='rgb' so they are expanded to 3 "
                "channels")
    if fixed_top and include_top and weights is not None and shape[:2] != (default_size,
                                                                           default_size):
        raise ConfigError(
            f"{owner}: with include_top=True its pretrained classifier needs "
            f"{default_size}x{default_size} images", received=f"input_shape={shape}",
            fix=f"use input_shape=({default_size}, {default_size}, 3), or include_top=False")
    return shape  # type: ignore[return-value]


def finish(owner: str, file_name: str, wmap: WeightMap, weights: Any, include_top: bool,
           classes: int, hint: str = "") -> None:
    """Load ``weights`` (None, a path or 'imagenet') into the built layers."""
    path = resolve_weights(weights, file_name, owner)
    if path is not None:
        load_weights(wmap, path, include_top, classes, hint)


def pool(x: Any, pooling: str | None, name: str = "") -> Any:
    from lepton.core import layers as L

    if pooling == "avg":
        return L.GlobalAveragePooling2D(name=f"{name}avg_pool")(x)
    if pooling == "max":
        return L.GlobalMaxPooling2D(name=f"{name}max_pool")(x)
    return x
