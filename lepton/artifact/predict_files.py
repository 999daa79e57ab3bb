"""Batch prediction from files: a table or a folder of images in, a table of predictions out.

The output is written to a temporary sibling and renamed into place, so a failure never
leaves a half-written file.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lepton.data.loaders import IMAGE_SUFFIXES, read_table, source_kind
from lepton.errors import ConfigError, DataError, LeptonWarning

WRITERS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl",
           ".json": "jsonl"}


def write_table(frame: pd.DataFrame, out: Path) -> Path:
    kind = WRITERS.get(out.suffix.lower())
    if kind is None:
        raise ConfigError(f"Cannot tell the output format of '{out.name}'",
                          expected=f"a name ending in {sorted(WRITERS)}", received=out.suffix)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    os.close(fd)
    try:
        if kind == "parquet":
            frame.to_parquet(tmp, index=False)
        elif kind == "jsonl":
            frame.to_json(tmp, orient="records", lines=True)
        else:
            frame.to_csv(tmp, sep="\t" if kind == "tsv" else ",", index=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def predict_path(model_dir: str | Path, data: str | Path, out: str | Path,
                 keep_columns: bool = False, runtime: str | None = None) -> tuple[int, Path]:
    """Predict every row (or image) of ``data``; returns (count, output path)."""
    from lepton.artifact.predictor import Predictor

    predictor = Predictor.from_artifact(model_dir, runtime=runtime)
    data = Path(data)
    if source_kind(data) == "images":
        if predictor.kind != "image":
            raise DataError(f"'{data}' is a folder but the model takes {predictor.kind} data",
                            fix="pass a table file")
        files = sorted(p for p in data.rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"No images in '{data}'", fix="pass a folder of PNG/JPEG files")
        good, frames = [], []
        for start in range(0, len(files), 512):
            batch, arrays = files[start:start + 512], []
            for f in batch:
                try:
                    arrays.append(predictor.pipeline.decode([f])[0])
                    good.append(f)
                except DataError as exc:
                    warnings.warn(f"Skipping corrupt image '{f}': {exc}", LeptonWarning,
                                  stacklevel=2)
            if arrays:
                frames.append(predictor.predict_frame(np.stack(arrays)))
        if not frames:
            raise DataError("No image in the folder could be read", received=str(data))
        result = pd.concat(frames, ignore_index=True)
        result.insert(0, "file", [str(f.relative_to(data)) for f in good])
    else:
        frame = read_table(data)
        target = getattr(predictor.pipeline, "target", None)
        features = frame.drop(columns=[target]) if target in frame.columns else frame
        result = predictor.predict_frame(features)
        if keep_columns:
            result = pd.concat([frame.reset_index(drop=True), result], axis=1)
    return len(result), write_table(result, Path(out))
