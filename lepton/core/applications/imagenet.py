"""ImageNet helpers shared by the applications: the preprocessing torchvision's weights were
trained with, and ``decode_predictions`` over the class names that ship with Lepton."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lepton.errors import ShapeError

MEAN = (0.485, 0.456, 0.406)  # RGB, on [0, 1] pixels: torchvision's ImageNet statistics
STD = (0.229, 0.224, 0.225)
CLASSES_FILE = Path(__file__).with_name("imagenet_classes.json")


def preprocess_input(x: Any, data_format: str | None = None) -> Any:
    """RGB pixels in [0, 255], channels-last ``(..., H, W, 3)`` -> what torchvision-trained
    weights expect: ``(x / 255 - mean) / std`` per channel. Returns a new array or tensor."""
    if data_format not in (None, "channels_last"):
        raise ShapeError("Lepton's applications take channels-last images",
                         received=f"data_format={data_format!r}",
                         fix="pass (N, H, W, 3) arrays, e.g. x.transpose(0, 2, 3, 1)")
    if isinstance(x, torch.Tensor):
        mean = torch.tensor(MEAN, dtype=torch.float32, device=x.device)
        std = torch.tensor(STD, dtype=torch.float32, device=x.device)
        return (x.float() / 255.0 - mean) / std
    arr = np.asarray(x, dtype=np.float32)
    if arr.shape[-1:] != (3,):
        raise ShapeError("preprocess_input expects RGB images with channels last",
                         expected="(..., height, width, 3)", received=f"shape {arr.shape}",
                         fix="load grayscale images with color_mode='rgb' (load_img, "
                             "image_dataset_from_directory) so they are expanded to 3 channels")
    return (arr / np.float32(255.0) - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)


@cache
def imagenet_classes() -> list[tuple[str, str]]:
    """The 1,000 (WordNet id, name) pairs in the models' output order."""
    data = json.loads(CLASSES_FILE.read_text())
    return [(wnid, name) for wnid, name in data["classes"]]


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Per image, the ``top`` (WordNet id, class name, score) triples, best first (Keras')."""
    arr = np.asarray(preds.detach().cpu() if isinstance(preds, torch.Tensor) else preds)
    if arr.ndim != 2 or arr.shape[1] != 1000:
        raise ShapeError("decode_predictions expects ImageNet scores, one row per image",
                         expected="shape (N, 1000)", received=f"shape {arr.shape}",
                         fix="use the output of a model built with include_top=True, "
                             "classes=1000")
    classes = imagenet_classes()
    order = np.argsort(-arr, axis=1)[:, :top]
    return [[(*classes[i], float(row[i])) for i in idx] for row, idx in zip(arr, order)]
