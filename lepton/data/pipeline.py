"""The preprocessing pipeline for tables and text: declared once, fitted on training rows only.

Declared in Python (``Pipeline(target="y", numeric={"scale": "minmax"})``) or YAML (the
``preprocessing:`` section, same keys), fitted with :meth:`Pipeline.fit` on the training split,
saved with :meth:`Pipeline.to_json` into the artifact's ``metadata["preprocessing"]`` and
rebuilt by :meth:`Pipeline.from_json` for predict and serving, which then apply exactly the
same numbers. Steps, in order: drop rows without a target, drop duplicate rows (training
only), drop all-missing and constant columns, then per column: impute, clip outliers and scale
(numeric), one-hot with an "other" slot for unseen values (categorical), TF-IDF n-grams or
token ids (text).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lepton.data.columns import (
    CategoricalColumn,
    NumericColumn,
    SequenceColumn,
    TfidfColumn,
    column_from_state,
)
from lepton.data.loaders import require_columns
from lepton.errors import ConfigError, DataError, LabelError, LeptonWarning

FORMAT = "lepton.preprocessing"
DEFAULTS: dict[str, Any] = {
    "drop_duplicates": True,
    "drop_constant": True,
    "numeric": {"impute": "median", "clip": [0.001, 0.999], "scale": "standard"},
    "categorical": {"max_categories": 50, "min_frequency": 1},
    "text": {"mode": "tfidf", "ngrams": [1, 2], "max_features": 10000, "min_df": 2,
             "char_ngrams": [2, 5], "char_max_features": 20000},
}
TASKS = {"binary", "multiclass", "regression"}


def _merge(base: dict, extra: dict | None) -> dict:
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def infer_type(series: pd.Series) -> str:
    """Guess numeric / categorical / text for one column from its training values."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return "numeric"
    values = series.dropna()
    if len(values) == 0:
        return "numeric"
    parsed = pd.to_numeric(values, errors="coerce")
    if parsed.notna().mean() >= 0.9:
        return "numeric"  # mostly numbers: stray text is reported by the numeric encoder
    text = values.astype(str)
    words = text.str.split().str.len().mean()
    unique = values.nunique() / len(values)
    if words >= 3 or (unique > 0.5 and text.str.len().mean() > 20):
        return "text"
    return "categorical"


def infer_task(y: pd.Series) -> str:
    """binary / multiclass / regression from the target's values."""
    values = y.dropna()
    n_unique = values.nunique()
    if pd.api.types.is_float_dtype(values) and n_unique > 20:
        return "regression"
    if pd.api.types.is_integer_dtype(values) and n_unique > 50:
        return "regression"
    if pd.api.types.is_float_dtype(values) and not np.allclose(values, np.round(values)):
        return "regression"
    return "binary" if n_unique == 2 else "multiclass"


def _json_label(value: Any) -> Any:
    """A label as JSON keeps its type: bools and whole numbers stay numbers, the rest text."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (np.floating, float)) and float(value).is_integer():
        return int(value)
    return str(value)


class Pipeline:
    """Preprocessing for a table (numeric, categorical and text columns) and its target."""

    def __init__(self, target: str | None = None, *, task: str | None = None,
                 columns: dict[str, dict] | None = None, exclude: list[str] | None = None,
                 **config: Any) -> None:
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"Unknown preprocessing option(s) {sorted(unknown)}",
                              expected=f"some of {sorted(DEFAULTS)} plus target, task, columns, "
                                       "exclude")
        if task is not None and task not in TASKS:
            raise ConfigError("Unknown task", expected=sorted(TASKS), received=task)
        self.target, self.task = target, task
        self.column_config = dict(columns or {})
        self.exclude = list(exclude or [])
        self.config = _merge(DEFAULTS, config)
        self.encoders: list = []
        self.labels: list[Any] = []
        self.dropped: dict[str, list[str]] = {"all_missing": [], "constant": []}
        self.fitted = False

    # -- declaration -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any] | None, target: str | None = None) -> Pipeline:
        """Build from the ``preprocessing:`` mapping of a YAML config (same keys as __init__)."""
        config = dict(config or {})
        target = config.pop("target", None) or target
        return cls(target, **config)

    @classmethod
    def from_yaml(cls, path: str | Path, target: str | None = None) -> Pipeline:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.from_config(data.get("preprocessing", data), target=data.get("target", target))

    # -- fitting -----------------------------------------------------------------------------
    def clean_training_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Drop rows without a target and (if asked) duplicate rows; training data only."""
        require_columns(frame, [self.target], where="The training data")
        missing = frame[self.target].isna()
        if missing.all():
            raise LabelError(f"Target column '{self.target}' has no values",
                             fix="pick the right --target column")
        if missing.any():
            warnings.warn(f"Dropping {int(missing.sum())} row(s) with no value in target "
                          f"'{self.target}'", LeptonWarning, stacklevel=2)
            frame = frame[~missing]
        if self.config["drop_duplicates"]:
            dup = frame.astype(str).duplicated()
            if dup.any():
                warnings.warn(f"Dropping {int(dup.sum())} duplicate row(s) from the training "
                              "data", LeptonWarning, stacklevel=2)
                frame = frame[~dup.to_numpy()]
        return frame

    def fit_target(self, y: pd.Series) -> None:
        self.task = self.task or infer_task(y)
        if self.task == "regression":
            self.labels = []
            return
        values = sorted(y.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
        self.labels = [_json_label(v) for v in values]
        if len(self.labels) < 2:
            raise LabelError(f"Target column '{self.target}' has only one class",
                             expected="at least two different values to learn to tell apart",
                             received=f"only {self.labels!r} in {len(y)} rows",
                             fix="check the target column, or add rows of the other classes")
        if self.task == "binary" and len(self.labels) != 2:
            self.task = "multiclass"

    def fit(self, frame: pd.DataFrame) -> Pipeline:
        """Fit every encoder on ``frame`` (the training split, target included)."""
        if self.target is None:
            raise ConfigError("The pipeline needs a target column to fit",
                              fix="pass --target COLUMN (or `target:` in the YAML config)")
        require_columns(frame, [self.target], where="The training data")
        self.fit_target(frame[self.target])
        require_columns(frame, list(self.column_config), where="The training data")
        self.encoders = []
        self.dropped = {"all_missing": [], "constant": []}
        for name in frame.columns:
            if name == self.target or name in self.exclude:
                continue
            series = frame[name]
            declared = dict(self.column_config.get(name, {}))
            kind = declared.pop("type", None) or infer_type(series)
            if kind == "ignore":
                continue
            if series.isna().all():
                self.dropped["all_missing"].append(name)
                continue
            if self.config["drop_constant"] and series.nunique(dropna=False) <= 1:
                self.dropped["constant"].append(name)
                continue
            self.encoders.append(self._encoder(name, kind, declared).fit(series))
        if self.dropped["all_missing"]:
            warnings.warn(f"Dropping column(s) with no values: {self.dropped['all_missing']}",
                          LeptonWarning, stacklevel=2)
        if not self.encoders:
            raise DataError("No usable feature columns are left",
                            received=f"columns {list(frame.columns)}, dropped {self.dropped}",
                            fix="add feature columns with varying values")
        if any(isinstance(e, SequenceColumn) for e in self.encoders) and len(self.encoders) > 1:
            raise ConfigError("Text in `sequence` mode must be the only input column",
                              received=[e.name for e in self.encoders],
                              fix="use text mode `tfidf`, or exclude the other columns")
        self.fitted = True
        return self

    def _encoder(self, name: str, kind: str, declared: dict[str, Any]):
        try:
            if kind == "numeric":
                return NumericColumn(name, **_merge(self.config["numeric"], declared))
            if kind == "categorical":
                return CategoricalColumn(name, **_merge(self.config["categorical"], declared))
            if kind == "text":
                opts = _merge(self.config["text"], declared)
                mode = opts.pop("mode", "tfidf")
                if mode == "sequence":
                    opts = {k: v for k, v in opts.items()
                            if k in {"vocab_size", "max_len", "lowercase"}}
                    return SequenceColumn(name, **opts)
                opts = {k: v for k, v in opts.items()
                        if k in {"ngrams", "max_features", "min_df", "lowercase",
                                 "char_ngrams", "char_max_features"}}
                return TfidfColumn(name, **opts)
        except TypeError as exc:
            raise ConfigError(f"Bad options for column '{name}'", received=str(exc)) from None
        raise ConfigError(f"Unknown type for column '{name}'",
                          expected="numeric, categorical, text or ignore", received=kind)

    # -- applying ----------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """'text' when the only input is a text column, else 'tabular'."""
        if len(self.encoders) == 1 and self.encoders[0].type == "text":
            return "text"
        return "tabular"

    @property
    def input_columns(self) -> list[str]:
        """The columns predict data must have."""
        return [e.name for e in self.encoders]

    @property
    def width(self) -> int:
        return sum(e.width for e in self.encoders)

    @property
    def output_dtype(self) -> str:
        return "int64" if isinstance(self.encoders[0], SequenceColumn) else "float32"

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Turn rows into the model's input array (float32, or int64 token ids)."""
        if not self.fitted:
            raise ConfigError("The pipeline is not fitted", fix="call fit() on training data first")
        require_columns(frame, self.input_columns, where="The data")
        blocks = [e.transform(frame[e.name]) for e in self.encoders]
        if len(blocks) == 1:
            return blocks[0]
        return np.concatenate(blocks, axis=1)

    def sparse_transform(self, frame: pd.DataFrame):
        """Like transform, as a scipy CSR matrix (keeps big TF-IDF inputs small in memory)."""
        import scipy.sparse as sp

        require_columns(frame, self.input_columns, where="The data")
        blocks = [e.sparse(frame[e.name]) if isinstance(e, TfidfColumn)
                  else sp.csr_matrix(e.transform(frame[e.name])) for e in self.encoders]
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def encode_target(self, y: pd.Series) -> np.ndarray:
        """Class indices (int64) for classification, float32 values for regression."""
        if self.task == "regression":
            values = to_float(y, self.target)
            return values.astype(np.float32)
        index = {str(v): i for i, v in enumerate(self.labels)}
        keys = y.map(lambda v: str(_json_label(v)) if not pd.isna(v) else None)
        codes = keys.map(index)
        if codes.isna().any():
            unknown = sorted({str(v) for v in y[codes.isna()].tolist()})[:5]
            raise LabelError(f"Target column '{self.target}' has labels the model never saw",
                             expected=f"one of {self.labels}", received=unknown,
                             fix="evaluate on data with the training labels")
        return codes.to_numpy(dtype=np.int64)

    # -- saving ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The fitted state: plain JSON (numbers, categories, vocabularies)."""
        return {"format": FORMAT, "version": 1, "kind": self.kind, "target": self.target,
                "task": self.task, "labels": self.labels,
                "columns": [e.state() for e in self.encoders], "dropped": self.dropped,
                "exclude": self.exclude,
                "config": {**self.config, "columns": self.column_config},
                "input": {"dtype": self.output_dtype, "shape": [self.width]}}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> Pipeline:
        if state.get("format") != FORMAT:
            raise DataError("This is not a Lepton preprocessing state",
                            expected=f"format '{FORMAT}'", received=state.get("format"))
        config = dict(state.get("config", {}))
        columns = config.pop("columns", {})
        pipe = cls(state.get("target"), task=state.get("task"), columns=columns,
                   exclude=state.get("exclude"), **config)
        pipe.labels = list(state.get("labels", []))
        pipe.dropped = state.get("dropped", {})
        pipe.encoders = [column_from_state(s) for s in state["columns"]]
        pipe.fitted = True
        return pipe


def to_float(series: pd.Series, name: str | None) -> np.ndarray:
    """A regression target as float64, with an error naming rows that are not numbers."""
    from lepton.data.columns import to_numeric

    values = to_numeric(series.rename(name))
    if np.isnan(values).any():
        raise LabelError(f"Target '{name}' has missing values", fix="drop those rows")
    return values
