"""Turn a data path into fitted preprocessing plus train / validation / test inputs.

Tables and text: read, drop rows without a target and duplicate rows, split with a seed
(stratified), fit the pipeline on the training split only, transform all three. Image
folders: scan, decode once into a disk cache (corrupt files skipped and counted), use the
folder's own train/val/test split when it has one, fit normalisation on training images.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lepton.data import ImagePipeline, Pipeline, build_cache, read_table, scan_folder
from lepton.data.split import split_indices
from lepton.errors import DataError, LeptonWarning

DENSE_LIMIT = 256 * 2**20  # bytes of float32 input kept dense; larger inputs are streamed


@dataclass
class Prepared:
    """Everything training needs, independent of where the data came from."""

    kind: str                      # tabular | text | image
    pipeline: Any                  # Pipeline or ImagePipeline, fitted
    task: str
    labels: list[Any]
    input_shape: tuple[int, ...]
    input_dtype: str
    train_read: Any                # callable(indices) -> model input rows
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    dense_train: np.ndarray | None = None  # the training input when it fits in memory
    info: dict[str, Any] = field(default_factory=dict)
    caches: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for cache in self.caches:
            cache.close()


def data_hash(path: Path) -> str:
    """sha256 of a file, or of an image folder's file names and sizes (cheap, stable)."""
    digest = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    else:
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{f.relative_to(path)}:{f.stat().st_size}\n".encode())
    return digest.hexdigest()


def prepare_table(path: Path, target: str | None, preprocessing: dict | None,
                  split: dict, text_mode: str | None = None) -> Prepared:
    frame = read_table(path)
    config = dict(preprocessing or {})
    if text_mode and "mode" not in config.get("text", {}):
        config["text"] = {**config.get("text", {}), "mode": text_mode}
    pipeline = Pipeline.from_config(config, target=target)
    if pipeline.target is None:
        raise DataError("Training from a table needs a target column",
                        received=f"columns {list(frame.columns)}",
                        fix="pass --target COLUMN (or `target:` in the YAML config)")
    rows_in = len(frame)
    frame = pipeline.clean_training_rows(frame).reset_index(drop=True)
    pipeline.fit_target(frame[pipeline.target])
    y = pipeline.encode_target(frame[pipeline.target])
    classes = pipeline.task != "regression"
    parts = split_indices(y if classes else np.zeros(len(y), np.float32),
                          test=float(split.get("test", 0.2)), val=float(split.get("val", 0.1)),
                          seed=int(split.get("seed", 42)), stratify=classes)
    if len(parts["train"]) < 2 or "val" not in parts:
        raise DataError("Too few rows to split into training and validation data",
                        received=f"{len(frame)} usable rows", fix="add more rows")
    train = frame.iloc[parts["train"]]
    pipeline.fit(train)
    width = pipeline.width
    features = frame.drop(columns=[pipeline.target])
    big = len(train) * width * 4 > DENSE_LIMIT and pipeline.output_dtype == "float32"
    dense_train = None
    if big:
        matrix = pipeline.sparse_transform(features.iloc[parts["train"]])

        def train_read(idx):
            return matrix[idx].toarray()
    else:
        dense_train = pipeline.transform(features.iloc[parts["train"]])

        def train_read(idx):
            return dense_train[idx]

    def part(name):
        if name not in parts:
            return None, None
        return pipeline.transform(features.iloc[parts[name]]), y[parts[name]]

    x_val, y_val = part("val")
    x_test, y_test = part("test")
    info = {"source": str(path), "rows": rows_in, "rows used": len(frame),
            "train / val / test rows": f"{len(parts['train'])} / {len(parts['val'])} / "
                                        f"{len(parts.get('test', []))}",
            "input columns": len(pipeline.input_columns), "model inputs": width}
    dropped = [c for cols in pipeline.dropped.values() for c in cols]
    if dropped:
        info["dropped columns"] = ", ".join(dropped)
    return Prepared(kind=pipeline.kind, pipeline=pipeline, task=pipeline.task,
                    labels=pipeline.labels, input_shape=(width,),
                    input_dtype=pipeline.output_dtype, train_read=train_read,
                    y_train=y[parts["train"]], x_val=x_val, y_val=y_val, x_test=x_test,
                    y_test=y_test, dense_train=None if big else dense_train, info=info)


def prepare_images(path: Path, preprocessing: dict | None, split: dict,
                   cache_dir: Path | None = None) -> Prepared:
    folder = scan_folder(path)
    pipeline = ImagePipeline.from_config(preprocessing)
    pipeline.choose_format([p for p, _ in folder.files])
    caches, skipped = {}, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LeptonWarning)
        for name, rows in folder.splits.items():
            caches[name] = build_cache(rows, folder.classes, pipeline.size, pipeline.channels,
                                       cache_dir=cache_dir)
            skipped += caches[name].skipped
    for w in caught:  # pass the per-file warnings on, once each
        warnings.warn(w.message, LeptonWarning, stacklevel=2)
    pipeline.skipped = skipped
    seed = int(split.get("seed", 42))
    if "all" in caches:
        cache = caches["all"]
        parts = split_indices(cache.labels, test=float(split.get("test", 0.2)),
                              val=float(split.get("val", 0.1)), seed=seed)
        train_cache, train_idx = cache, parts["train"]
        val_src = (cache, parts["val"])
        test_src = (cache, parts["test"]) if "test" in parts else None
    else:
        if "train" not in caches:
            raise DataError(f"Image folder '{path}' has split folders but no 'train'",
                            received=sorted(caches), fix="add a train/ folder")
        train_cache = caches["train"]
        train_idx = np.arange(len(train_cache.labels))
        if "val" in caches:
            val_src = (caches["val"], np.arange(len(caches["val"].labels)))
        else:
            parts = split_indices(train_cache.labels, test=0.0,
                                  val=float(split.get("val", 0.1)), seed=seed)
            train_idx, val_src = parts["train"], (train_cache, parts["val"])
        test_src = ((caches["test"], np.arange(len(caches["test"].labels)))
                    if "test" in caches else None)
    pipeline.fit(_Subset(train_cache, train_idx), folder.classes)

    def load(src):
        if src is None:
            return None, None
        cache, idx = src
        return pipeline.scale(cache.images[idx]), cache.labels[idx]

    x_val, y_val = load(val_src)
    x_test, y_test = load(test_src)

    def train_read(idx):
        return pipeline.scale(train_cache.images[train_idx[idx]])

    info = {"source": str(path), "images": sum(len(c.labels) for c in caches.values()),
            "skipped corrupt images": len(skipped),
            "train / val / test images": f"{len(train_idx)} / {len(y_val)} / "
                                          f"{0 if y_test is None else len(y_test)}",
            "image size": f"{pipeline.size[0]}x{pipeline.size[1]}x{pipeline.channels}"}
    if skipped:
        info["skipped files"] = ", ".join(Path(s).name for s in skipped[:10])
    return Prepared(kind="image", pipeline=pipeline, task=pipeline.task,
                    labels=pipeline.labels, input_shape=pipeline.input_shape,
                    input_dtype="float32", train_read=train_read,
                    y_train=train_cache.labels[train_idx], x_val=x_val, y_val=y_val,
                    x_test=x_test, y_test=y_test, info=info, caches=list(caches.values()))


class _Subset:
    """The training rows of a cache, for fitting the normalisation."""

    def __init__(self, cache, idx) -> None:
        self.images = _Rows(cache.images, idx)


class _Rows:
    def __init__(self, images, idx) -> None:
        self.base, self.idx = images, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, key):
        return self.base[self.idx[key]]
