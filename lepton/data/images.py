"""Image folders: the label is the folder name; images are decoded once into a disk cache.

``root/<label>/*.png`` is one pool that Lepton splits; ``root/{train,val,test}/<label>/*`` keeps
the splits given. Images are decoded with Pillow, converted to grayscale or RGB, resized to one
size and written into a uint8 ``numpy.memmap`` on disk, so a folder larger than memory trains
by reading slices of that file. A corrupt image is skipped with a warning naming it, and
counted.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lepton.data.loaders import IMAGE_SUFFIXES
from lepton.errors import DataError, LeptonWarning

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}


@dataclass
class ImageFolder:
    """The files of an image folder, grouped by split, with sorted class names."""

    root: Path
    classes: list[str]
    splits: dict[str, list[tuple[Path, str]]] = field(default_factory=dict)

    @property
    def files(self) -> list[tuple[Path, str]]:
        return [item for rows in self.splits.values() for item in rows]


def _class_files(folder: Path) -> list[tuple[Path, str]]:
    rows = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(sub.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                rows.append((f, sub.name))
    return rows


def scan_folder(root: str | Path) -> ImageFolder:
    """List the images of ``root``; raise a DataError when it holds no labelled images."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"'{root}' is not a folder", expected="a folder of <label>/<image> files")
    subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    split_dirs = {SPLIT_NAMES[p.name.lower()]: p for p in subdirs if p.name.lower() in SPLIT_NAMES}
    if split_dirs and len(split_dirs) == len(subdirs):
        splits = {name: _class_files(p) for name, p in split_dirs.items()}
    else:
        splits = {"all": _class_files(root)}
    classes = sorted({label for rows in splits.values() for _, label in rows})
    if not classes:
        raise DataError(f"Image folder '{root}' has no images in label sub-folders",
                        expected=f"files like {root}/<label>/<name>.png ({sorted(IMAGE_SUFFIXES)})",
                        received=f"sub-folders {sorted(p.name for p in subdirs)[:10]}",
                        fix="put each class's images in a sub-folder named after the class")
    return ImageFolder(root=root, classes=classes, splits=splits)


def open_image(source: str | Path | bytes):
    """Open an image from a path or from bytes with Pillow, fully decoded."""
    from PIL import Image

    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    img = Image.open(handle)
    img.load()
    return img


def decode_image(source, size: tuple[int, int], channels: int) -> np.ndarray:
    """Decode one image (a Path, bytes, base64 text or a pixel array) to uint8 (H, W, C)."""
    from PIL import Image

    if isinstance(source, str):  # text is base64, never a path: requests must not read files
        try:
            source = base64.b64decode(source.split(",", 1)[-1], validate=True)
        except ValueError:
            raise DataError("An image given as text must be base64-encoded image bytes",
                            received=f"{source[:40]!r}",
                            fix="send base64 of the PNG/JPEG file") from None
    if isinstance(source, (list, np.ndarray)):
        arr = np.asarray(source)
        if arr.dtype.kind == "f" and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3):
            raise DataError("An image array must be (H, W) or (H, W, C)",
                            received=f"shape {arr.shape}")
        img = Image.fromarray(arr)
    else:
        img = open_image(source)
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    out = np.asarray(img, dtype=np.uint8)
    return out[..., None] if channels == 1 else out


def infer_format(files: list[Path], sample: int = 256) -> tuple[tuple[int, int], int]:
    """Pick (height, width) as the most common size and 1 or 3 channels from a sample."""
    from PIL import Image

    sizes: Counter = Counter()
    color = False
    step = max(1, len(files) // sample)
    for f in files[::step][:sample]:
        try:
            with Image.open(f) as img:
                sizes[(img.height, img.width)] += 1
                if not color and img.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                    color = _has_colour(img)
        except Exception:  # noqa: BLE001 - corrupt files are reported when decoded
            continue
    if not sizes:
        raise DataError("None of the sampled images could be opened",
                        received=f"{len(files)} files, e.g. '{files[0]}'" if files else "no files",
                        fix="check that the files are PNG/JPEG images")
    (h, w), _ = sizes.most_common(1)[0]
    if max(h, w) > 224:  # keep the cache and the model small: big photos are downsized
        scale = 224 / max(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
    return (h, w), 3 if color else 1


def _has_colour(img) -> bool:
    """True when the channels of a (thumbnail of an) RGB-like image really differ."""
    thumb = np.asarray(img.convert("RGB").resize((32, 32)), dtype=np.int16)
    spread = thumb.max(axis=2) - thumb.min(axis=2)
    return bool((spread > 12).mean() > 0.01)


@dataclass
class ImageCache:
    """Decoded images in a uint8 memmap on disk, the labels, and the files skipped."""

    images: np.ndarray
    labels: np.ndarray
    files: list[str]
    skipped: list[str]
    path: Path | None = None

    def close(self) -> None:
        """Delete the cache file (the arrays become unusable)."""
        self.images = np.zeros((0,) + self.images.shape[1:], np.uint8)
        if self.path is not None and self.path.exists():
            self.path.unlink()


def _decode_or_none(args):
    path, size, channels = args
    try:
        return decode_image(path, size, channels)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "corrupt image"
        return exc


def build_cache(rows: list[tuple[Path, str]], classes: list[str], size: tuple[int, int],
                channels: int, cache_dir: str | Path | None = None,
                in_memory_limit: int = 512 * 2**20) -> ImageCache:
    """Decode ``rows`` (path, label) into a cache; corrupt files are warned about and skipped.

    Caches up to ``in_memory_limit`` bytes live in RAM, bigger ones in a memmap file under
    ``cache_dir`` (the system temp dir by default) that :meth:`ImageCache.close` removes.
    """
    h, w = size
    n = len(rows)
    nbytes = n * h * w * channels
    path = None
    if nbytes > in_memory_limit:
        fd, name = tempfile.mkstemp(prefix="lepton-images-", suffix=".u8", dir=cache_dir)
        os.close(fd)
        path = Path(name)
        images = np.memmap(path, dtype=np.uint8, mode="w+", shape=(max(n, 1), h, w, channels))
    else:
        images = np.zeros((n, h, w, channels), np.uint8)
    index = {c: i for i, c in enumerate(classes)}
    labels = np.zeros(n, np.int64)
    kept, skipped, files = 0, [], []
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = pool.map(_decode_or_none, ((p, size, channels) for p, _ in rows), chunksize=64)
        for (p, label), arr in zip(rows, results, strict=True):
            if isinstance(arr, Exception):
                skipped.append(str(p))
                warnings.warn(f"Skipping corrupt image '{p}': {type(arr).__name__}: "
                              f"{str(arr)[:120]}", LeptonWarning, stacklevel=2)
                continue
            images[kept] = arr
            labels[kept] = index[label]
            files.append(str(p))
            kept += 1
    if kept == 0:
        if path is not None:
            path.unlink()
        raise DataError("No image could be decoded", received=f"{len(skipped)} corrupt files",
                        fix="check that the files are PNG/JPEG images")
    return ImageCache(images=images[:kept], labels=labels[:kept], files=files,
                      skipped=skipped, path=path)
