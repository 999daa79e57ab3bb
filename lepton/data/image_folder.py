"""Keras' image utilities: ``load_img``, ``img_to_array`` and ``image_dataset_from_directory``.

``image_dataset_from_directory`` lists a folder tree once (the label is the sub-folder's
name) and decodes images batch by batch as it is iterated, so ``fit``, ``evaluate`` and
``predict`` take it directly and a folder larger than memory streams. Pixels stay float32 in
[0, 255] as in Keras; apply the backbone's ``preprocess_input`` (or a ``Rescaling`` layer).
Files that are not images, or do not decode, are skipped with a warning that names them;
grayscale images asked for as RGB are expanded to three channels, and a warning says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lepton.data.loaders import IMAGE_SUFFIXES
from lepton.errors import ConfigError, DataError, LeptonWarning

MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
LABEL_MODES = ("int", "categorical", "binary", None)
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F", "P")


def _mode(color_mode: str) -> str:
    if color_mode not in MODES:
        raise ConfigError("Unknown color_mode", expected=f"one of {sorted(MODES)}",
                          received=repr(color_mode))
    return MODES[color_mode]


def _size(target_size: Any, arg: str) -> tuple[int, int] | None:
    if target_size is None:
        return None
    if isinstance(target_size, int):
        target_size = (target_size, target_size)
    if (not isinstance(target_size, (tuple, list)) or len(target_size) != 2
            or not all(isinstance(v, int) and v > 0 for v in target_size)):
        raise ConfigError(f"`{arg}` must be (height, width) in pixels",
                          received=f"{arg}={target_size!r}", fix=f"e.g. {arg}=(224, 224)")
    return int(target_size[0]), int(target_size[1])


def load_img(path: str | Path, color_mode: str = "rgb", target_size: Any = None,
             interpolation: str = "bilinear") -> Any:
    """Open an image file as a PIL image in ``color_mode``, resized to ``target_size``
    (height, width) when given. A file that is not an image raises a DataError naming it."""
    from PIL import Image

    mode, size = _mode(color_mode), _size(target_size, "target_size")
    methods = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR,
               "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
    if interpolation not in methods:
        raise ConfigError("Unknown interpolation", expected=f"one of {sorted(methods)}",
                          received=repr(interpolation))
    try:
        with Image.open(path) as img:
            img.load()
            out = img.convert(mode) if img.mode != mode else img.copy()
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"'{path}' is not a readable image", received=f"{type(exc).__name__}: "
                        f"{str(exc)[:100]}", fix="pass a PNG/JPEG/BMP/GIF/WebP/TIFF file") from None
    if size is not None and out.size != (size[1], size[0]):
        out = out.resize((size[1], size[0]), methods[interpolation])
    return out


def img_to_array(img: Any, dtype: str = "float32") -> np.ndarray:
    """A PIL image -> ``(H, W, C)`` array (grayscale keeps a channel axis of 1)."""
    arr = np.asarray(img, dtype=dtype)
    return arr[..., None] if arr.ndim == 2 else arr


def _is_gray(path: Path) -> bool | None:
    """True / False for a readable image (header only), None for anything else."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.mode in GRAY_MODES
    except Exception:  # noqa: BLE001 - any failure means "not an image"
        return None


class ImageDataset:
    """Batches of ``(images, labels)`` (or images alone with ``label_mode=None``) read from
    files as it is iterated; reshuffled on each pass when ``shuffle``."""

    def __init__(self, files: list[Path], labels: np.ndarray, class_names: list[str],
                 image_size: tuple[int, int], batch_size: int, color_mode: str,
                 label_mode: str | None, shuffle: bool, seed: int | None,
                 interpolation: str) -> None:
        self.file_paths = [str(f) for f in files]
        self.labels, self.class_names = labels, class_names
        self.image_size, self.batch_size = image_size, batch_size
        self.color_mode, self.label_mode = color_mode, label_mode
        self.shuffle, self.interpolation = shuffle, interpolation
        self.rng = np.random.default_rng(seed)
        self.transforms: list[Any] = []

    def map(self, fn: Any) -> ImageDataset:
        """A new dataset whose batches go through ``fn`` (``fn(x, y)`` -> ``(x, y)``, or
        ``fn(x)`` without labels), e.g. ``ds.map(lambda x, y: (preprocess_input(x), y))``."""
        import copy

        other = copy.copy(self)
        other.transforms = [*self.transforms, fn]
        return other

    def __len__(self) -> int:
        return -(-len(self.file_paths) // self.batch_size)

    def _targets(self, idx: np.ndarray) -> np.ndarray:
        y = self.labels[idx]
        if self.label_mode == "categorical":
            return np.eye(len(self.class_names), dtype=np.float32)[y]
        if self.label_mode == "binary":
            return y.astype(np.float32)[:, None]
        return y

    def __iter__(self) -> Iterator[Any]:
        order = (self.rng.permutation(len(self.file_paths)) if self.shuffle
                 else np.arange(len(self.file_paths)))
        for start in range(0, len(order), self.batch_size):
            idx, images = [], []
            for i in order[start:start + self.batch_size]:
                try:
                    img = load_img(self.file_paths[i], self.color_mode, self.image_size,
                                   self.interpolation)
                except DataError as exc:
                    warnings.warn(f"Skipping '{self.file_paths[i]}': {exc}", LeptonWarning,
                                  stacklevel=2)
                    continue
                images.append(img_to_array(img))
                idx.append(i)
            if not images:
                continue
            batch: Any = np.stack(images)
            if self.label_mode is not None:
                batch = (batch, self._targets(np.asarray(idx)))
            for fn in self.transforms:
                batch = fn(*batch) if isinstance(batch, tuple) else fn(batch)
            yield batch


def image_dataset_from_directory(directory: str | Path, labels: str | None = "inferred",
                                 label_mode: str | None = "int",
                                 class_names: list[str] | None = None,
                                 color_mode: str = "rgb", batch_size: int = 32,
                                 image_size: Any = (256, 256), shuffle: bool = True,
                                 seed: int | None = None, validation_split: float | None = None,
                                 subset: str | None = None,
                                 interpolation: str = "bilinear") -> Any:
    """Keras' ``image_dataset_from_directory``: ``directory/<class>/<image>`` -> batches.

    ``subset='training'|'validation'`` (with ``validation_split`` and a ``seed``) takes one
    side of a seeded split, ``'both'`` returns both; the class order is sorted folder names
    (or ``class_names``). ``labels=None`` lists every image under ``directory``, unlabelled.
    """
    _mode(color_mode)
    size = _size(image_size, "image_size")
    if label_mode not in LABEL_MODES:
        raise ConfigError("Unknown label_mode", expected=f"one of {list(LABEL_MODES)}",
                          received=repr(label_mode))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError("`batch_size` must be a positive int", received=repr(batch_size))
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"'{root}' is not a folder", expected="a folder of <class>/<image> files",
                        fix="check the path")
    if labels is None:
        label_mode, names = None, []
        rows = [(f, 0) for f in sorted(root.rglob("*")) if f.is_file()]
    else:
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        names = list(class_names) if class_names is not None else found
        missing = sorted(set(names) - set(found))
        if missing:
            raise DataError(f"class_names {missing} have no folder in '{root}'",
                            expected=f"some of {found}", fix="match class_names to the folders")
        rows = [(f, k) for k, name in enumerate(names)
                for f in sorted((root / name).rglob("*")) if f.is_file()]
    kept, gray, skipped = [], 0, []
    for f, k in rows:
        is_gray = _is_gray(f) if f.suffix.lower() in IMAGE_SUFFIXES else None
        if is_gray is None:
            skipped.append(f)
            warnings.warn(f"Skipping '{f}': not an image (expected one of "
                          f"{sorted(IMAGE_SUFFIXES)} that Pillow can open)", LeptonWarning,
                          stacklevel=2)
            continue
        gray += bool(is_gray)
        kept.append((f, k))
    if not kept:
        raise DataError(f"No images found in '{root}'",
                        expected="files like <class>/<name>.png", received=f"{len(skipped)} "
                        "non-image files", fix="put each class's images in a sub-folder")
    if label_mode == "binary" and len(names) != 2:
        raise ConfigError("label_mode='binary' needs exactly two classes",
                          received=f"{len(names)} classes {names[:10]}",
                          fix="use label_mode='int' or 'categorical'")
    if gray and color_mode == "rgb":
        warnings.warn(f"{gray} grayscale image(s) in '{root}' are expanded to 3 channels "
                      "(color_mode='rgb'), as an RGB backbone needs", LeptonWarning,
                      stacklevel=2)
    files = [f for f, _ in kept]
    y = np.asarray([k for _, k in kept], np.int64)
    make = lambda idx, shuf: ImageDataset(  # noqa: E731
        [files[i] for i in idx], y[idx], names, size or (256, 256), batch_size, color_mode,
        label_mode, shuf, seed, interpolation)
    everything = np.arange(len(files))
    if not validation_split:
        if subset is not None:
            raise ConfigError("`subset` needs `validation_split`", received=f"subset={subset!r}",
                              fix="pass validation_split=0.2 (and a seed)")
        return make(everything, shuffle)
    if not 0 < validation_split < 1 or subset not in ("training", "validation", "both"):
        raise ConfigError("validation_split must be in (0, 1) with subset 'training', "
                          "'validation' or 'both'",
                          received=f"validation_split={validation_split!r}, subset={subset!r}")
    if seed is None:
        raise ConfigError("A validation split needs a `seed`, so that the training and "
                          "validation subsets do not overlap", fix="pass seed=123")
    order = np.random.default_rng(seed).permutation(len(files))
    n_val = int(round(validation_split * len(files)))
    train, val = make(np.sort(order[n_val:]), shuffle), make(np.sort(order[:n_val]), False)
    return {"training": train, "validation": val, "both": (train, val)}[subset]
