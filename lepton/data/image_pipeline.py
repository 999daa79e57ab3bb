"""Preprocessing for image models: decode, grayscale/RGB, resize, normalise, augment.

The fitted state (size, channels, per-channel mean and std, labels, augmentation settings) is
plain JSON in the artifact, so predict and the server decode and normalise exactly as
training did. Augmentation runs on training batches only (:mod:`lepton.data.augment`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lepton.data.images import ImageCache, decode_image, infer_format
from lepton.errors import ConfigError, DataError

FORMAT = "lepton.preprocessing"
AUGMENT_DEFAULTS = {"rotate": 10.0, "shift": 0.1, "zoom": 0.1, "flip": False}


class ImagePipeline:
    """Image preprocessing: declared options in, fitted JSON state out."""

    kind = "image"

    def __init__(self, size: list[int] | tuple[int, int] | None = None,
                 channels: int | None = None, normalize: bool = True,
                 augment: dict[str, Any] | bool | None = True) -> None:
        if channels not in (None, 1, 3):
            raise ConfigError("Image channels must be 1 (grayscale) or 3 (RGB)",
                              received=channels)
        self.size = tuple(size) if size else None
        self.channels = channels
        self.normalize = normalize
        if augment is True:
            augment = dict(AUGMENT_DEFAULTS)
        elif isinstance(augment, dict):
            augment = {**AUGMENT_DEFAULTS, **augment}
        self.augment: dict[str, Any] | None = augment or None
        self.mean: list[float] = [0.0]
        self.std: list[float] = [1.0]
        self.labels: list[Any] = []
        self.task = "multiclass"
        self.skipped: list[str] = []

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> ImagePipeline:
        config = dict(config or {})
        config = config.get("image", config)
        try:
            return cls(**config)
        except TypeError as exc:
            raise ConfigError("Bad image preprocessing options", received=str(exc),
                              expected="size, channels, normalize, augment") from None

    def choose_format(self, files: list) -> None:
        """Fix size and channels from the images when the config left them open."""
        size, channels = infer_format(files)
        self.size = self.size or size
        self.channels = self.channels or channels

    def fit(self, cache: ImageCache, labels: list[Any]) -> ImagePipeline:
        """Fit the per-channel mean and std on the training images."""
        self.labels = list(labels)
        self.task = "binary" if len(labels) == 2 else "multiclass"
        if len(labels) < 2:
            raise DataError("An image folder needs at least two label sub-folders",
                            received=f"labels {labels}", fix="add a folder per class")
        if self.normalize:
            step = max(1, len(cache.images) // 5000)
            sample = np.asarray(cache.images[::step], dtype=np.float32) / 255.0
            self.mean = sample.mean(axis=(0, 1, 2)).tolist()
            self.std = [max(float(s), 1e-3) for s in sample.std(axis=(0, 1, 2))]
        else:
            self.mean, self.std = [0.0] * self.channels, [1.0] * self.channels
        return self

    def scale(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> normalised float32 (N, H, W, C)."""
        x = np.asarray(images, dtype=np.float32) * np.float32(1 / 255)
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        return (x - mean) / std

    def decode(self, records: list) -> np.ndarray:
        """Raw images (bytes, base64 text, Paths or pixel arrays) -> uint8 (N, H, W, C)."""
        out = np.zeros((len(records), *self.size, self.channels), np.uint8)
        for i, rec in enumerate(records):
            try:
                out[i] = decode_image(rec, self.size, self.channels)
            except DataError:
                raise
            except Exception as exc:  # noqa: BLE001 - any decoder failure
                raise DataError(f"Input {i} is not a readable image",
                                received=f"{type(exc).__name__}: {str(exc)[:100]}",
                                fix="send PNG or JPEG bytes (base64 in JSON)") from None
        return out

    def transform(self, records: list) -> np.ndarray:
        return self.scale(self.decode(records))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.size, self.channels)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": 1, "kind": "image", "task": self.task,
                "labels": self.labels, "size": list(self.size), "channels": self.channels,
                "normalize": self.normalize, "mean": self.mean, "std": self.std,
                "augment": self.augment, "skipped_files": len(self.skipped),
                "input": {"dtype": "float32", "shape": list(self.input_shape)}}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> ImagePipeline:
        pipe = cls(state["size"], state["channels"], state.get("normalize", True),
                   state.get("augment"))
        pipe.mean, pipe.std = list(state["mean"]), list(state["std"])
        pipe.labels, pipe.task = list(state["labels"]), state.get("task", "multiclass")
        return pipe
