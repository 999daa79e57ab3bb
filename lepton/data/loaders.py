"""Read user data (files, frames, arrays) into pandas, with errors that name the file.

Tables come from CSV/TSV, Parquet, JSON lines, pandas or NumPy; image folders are handled by
:mod:`lepton.data.images`. Every failure here is a :class:`~lepton.errors.DataError` whose
message names the file and the fix, never a bare parser traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lepton.errors import DataError, NotFoundError

TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".parquet", ".pq", ".json", ".jsonl", ".ndjson"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def source_kind(path: str | Path) -> str:
    """Say whether ``path`` is a table file ("table") or an image folder ("images")."""
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"Data path '{p}' does not exist",
                            fix="check the path, or pass --data with an existing file or folder")
    if p.is_dir():
        return "images"
    if p.suffix.lower() in TABLE_SUFFIXES:
        return "table"
    raise DataError(f"Cannot tell how to read '{p.name}'",
                    expected=f"a folder of images or a file ending in {sorted(TABLE_SUFFIXES)}",
                    received=f"suffix '{p.suffix}'",
                    fix="rename the file with its real format's suffix")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet/JSON-lines file into a DataFrame with at least one row."""
    p = Path(path)
    if source_kind(p) != "table":
        raise DataError(f"'{p}' is a folder, not a table file",
                        fix="pass a .csv/.tsv/.parquet file, or use the folder as image data")
    if p.stat().st_size == 0:
        raise DataError(f"Data file '{p}' is empty", expected="a header line and data rows",
                        received="0 bytes", fix="export the data again")
    suffix = p.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            from lepton.errors import require

            require("pyarrow", "parquet")
            frame = pd.read_parquet(p)
        elif suffix in {".json", ".jsonl", ".ndjson"}:
            frame = pd.read_json(p, lines=suffix != ".json")
        else:
            sep = "\t" if suffix == ".tsv" else None
            frame = pd.read_csv(p, sep=sep, engine="python" if sep is None else "c",
                                skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"Cannot parse '{p}'", received=str(exc).splitlines()[0][:200],
                        fix="check the file's format, delimiter and encoding") from None
    if len(frame) == 0:
        raise DataError(f"Data file '{p}' has a header but no rows",
                        expected="at least one data row", received=f"columns {list(frame.columns)}",
                        fix="export the data again with its rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def as_frame(data: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """Turn a DataFrame, a NumPy array, a dict of columns or a list of row dicts into a frame."""
    if isinstance(data, (str, Path)):
        return read_table(data)
    if isinstance(data, pd.DataFrame):
        frame = data.copy()
    elif isinstance(data, pd.Series):
        frame = data.to_frame()
    elif isinstance(data, np.ndarray):
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2:
            raise DataError("A NumPy table must be 1-D or 2-D", expected="shape (rows, columns)",
                            received=f"shape {data.shape}",
                            fix="reshape the array, or pass images as an image folder")
        names = columns or [f"x{i}" for i in range(data.shape[1])]
        frame = pd.DataFrame(data, columns=names)
    elif isinstance(data, dict):
        frame = pd.DataFrame(data)
    elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
        frame = pd.DataFrame.from_records(data)
    else:
        raise DataError("Cannot read this data as a table",
                        expected="a path, DataFrame, NumPy array, dict of columns or list of dicts",
                        received=type(data).__name__)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def require_columns(frame: pd.DataFrame, needed: list[str], *, where: str) -> None:
    """Raise a DataError naming the columns of ``needed`` that ``frame`` lacks."""
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        shown = ", ".join(f"'{c}'" for c in missing)
        raise DataError(f"{where} is missing column(s) {shown}",
                        expected=f"columns {needed}", received=f"columns {list(frame.columns)}",
                        fix=f"add the column(s) {shown} to the data")
