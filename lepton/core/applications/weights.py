"""Pretrained weights from a local safetensors file in torchvision's key layout; never from
the network.

A builder records, while it makes each layer, which torchvision key prefix feeds it
(:class:`WeightMap`). Loading checks the file against the whole architecture's keys (the
classifier's too, so a file for another network or width is caught even with
``include_top=False``) and reports every missing, unexpected and mis-shaped key in one error.
Lepton keeps convolution and Dense kernels in torch's layout, so most tensors copy as they
are; only a Dense after a channels-last Flatten (VGG16's first classifier layer) is reordered.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lepton.errors import ArtifactError, ConfigError

BN_KEYS = ("weight", "bias", "running_mean", "running_var")
OPTIONAL_SUFFIX = "num_batches_tracked"


def weights_dir() -> Path:
    """Where ``weights="imagenet"`` looks: ``$LEPTON_HOME/weights`` (else ``./.lepton``)."""
    return Path(os.environ.get("LEPTON_HOME") or ".lepton").expanduser() / "weights"


def resolve_weights(weights: Any, file_name: str, owner: str) -> Path | None:
    """None, a path, or ``"imagenet"`` (the file ``weights_dir()/file_name``) -> a Path."""
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise ConfigError(f"{owner} expected `weights` to be None, 'imagenet' or a path",
                          received=f"weights={weights!r}")
    if str(weights) == "imagenet":
        path = weights_dir() / file_name
        if not path.is_file():
            raise ArtifactError(
                f"{owner}(weights='imagenet') looks for a local file and found none; Lepton "
                "never downloads weights",
                expected=f"a safetensors file in torchvision's key layout at {path}",
                received="no such file",
                fix=f"copy the file there (or set LEPTON_HOME), or pass weights='/path/to/"
                    f"{file_name}'; convert published torchvision weights once with "
                    "safetensors.torch.save_file(model.state_dict(), path)")
        return path
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ArtifactError(f"{owner}: the weights file '{path}' does not exist",
                            expected="a .safetensors file",
                            fix="check the path, or pass weights=None to start from random "
                                "weights")
    return path


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Raw tensors from ``path``; pickles and malformed files are refused."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from lepton.core.saving import PICKLE_SUFFIXES, looks_like_pickle, refuse_pickle

    if path.suffix.lower() in PICKLE_SUFFIXES or looks_like_pickle(path):
        refuse_pickle(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"Cannot read the weights file '{path}'",
                            expected="a safetensors file", received=str(exc)[:200],
                            fix="convert the weights with safetensors.torch.save_file") from None


@dataclass
class Slot:
    """One torchvision module (key prefix) and the Lepton layer its tensors go into."""

    prefix: str
    layer: Any
    kind: str  # conv | bn | dense | dense_chw (a Dense after Flatten of a (C, H, W) map)
    chw: tuple[int, int, int] | None = None

    def keys(self) -> dict[str, str]:
        """torchvision key -> Lepton attribute."""
        if self.kind == "bn":
            names = dict(zip(BN_KEYS, ("gamma", "beta", "moving_mean", "moving_variance")))
        else:
            names = {"weight": "kernel"}
            if getattr(self.layer, "use_bias", True):
                names["bias"] = "bias"
        return {f"{self.prefix}.{k}": v for k, v in names.items()}


@dataclass
class WeightMap:
    """What a builder made, in torchvision's terms, plus the classifier's key prefixes
    (allowed in the file when the top is left out) and the key that holds the class count."""

    owner: str
    top_prefixes: tuple[str, ...]
    classes_key: str
    slots: list[Slot] = field(default_factory=list)

    def add(self, prefix: str, layer: Any, kind: str,
            chw: tuple[int, int, int] | None = None) -> Any:
        self.slots.append(Slot(prefix, layer, kind, chw))
        return layer


def load_weights(wmap: WeightMap, path: Path, include_top: bool, classes: int,
                 hint: str = "") -> None:
    """Copy the file's tensors into the layers; one error lists every key that is wrong."""
    tensors = read_safetensors(path)
    if include_top and wmap.classes_key in tensors and \
            tensors[wmap.classes_key].shape[0] != classes:
        found = tensors[wmap.classes_key].shape[0]
        raise ConfigError(
            f"{wmap.owner}(include_top=True, classes={classes}) does not match the weights "
            f"file, whose classifier has {found} classes",
            expected=f"classes={found} with include_top=True", received=f"classes={classes}",
            fix=f"to train on your own {classes} classes use include_top=False (with "
                "pooling='avg') and add a new Dense head; or pass classes="
                f"{found} to use the file's classifier")
    expected: dict[str, tuple[int, ...]] = {}
    targets: dict[str, tuple[Slot, str]] = {}
    for slot in wmap.slots:
        for key, attr in slot.keys().items():
            expected[key] = tuple(getattr(slot.layer, attr).shape)
            targets[key] = (slot, attr)
    optional = {f"{s.prefix}.{OPTIONAL_SUFFIX}" for s in wmap.slots if s.kind == "bn"}
    missing = sorted(k for k in expected if k not in tensors)
    unexpected = sorted(k for k in tensors if k not in expected and k not in optional
                        and not (not include_top and k.startswith(wmap.top_prefixes)))
    misshaped = sorted(f"{k}: file {tuple(tensors[k].shape)}, model {expected[k]}"
                       for k in expected if k in tensors
                       and tuple(tensors[k].shape) != expected[k])
    if missing or unexpected or misshaped:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected),
                            ("mis-shaped", misshaped)):
            if keys:
                shown = ", ".join(keys[:6]) + (f" ... ({len(keys) - 6} more)"
                                                if len(keys) > 6 else "")
                parts.append(f"{len(keys)} {label} key(s): {shown}")
        raise ArtifactError(
            f"The weights file '{path.name}' does not fit {wmap.owner}",
            expected=f"{len(expected)} tensors in torchvision's key layout for this network",
            received="; ".join(parts),
            fix=hint or "pass the file made for this architecture and width (or weights=None)")
    with torch.no_grad():
        for key, (slot, attr) in targets.items():
            value = tensors[key]
            if slot.kind == "dense_chw" and attr == "kernel" and slot.chw is not None:
                c, h, w = slot.chw  # torch flattens (C, H, W); Lepton's Flatten (H, W, C)
                value = value.reshape(-1, c, h, w).permute(0, 2, 3, 1).reshape(value.shape)
            getattr(slot.layer, attr).copy_(value)
        for slot in wmap.slots:
            if slot.kind == "bn":  # pretrained statistics are warm: no bias-corrected warm-up
                slot.layer.batches_seen.fill_(slot.layer.warmup)
                slot.layer.seen = slot.layer.warmup
