"""One encoder per column type: fitted on training rows, stored as plain JSON numbers.

Each encoder has ``fit(series)``, ``transform(series) -> float32 (rows, width)`` (or int64 token
ids for sequence text), ``state() -> dict`` and ``from_state(dict)``. The state holds numbers,
categories and vocabularies only, never a pickled object, so an artifact loads without
executing anything.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from lepton.errors import ConfigError, DataError

MISSING = "__missing__"


def _row_list(index: pd.Index, mask: np.ndarray, limit: int = 5) -> str:
    rows = [str(i) for i in index[mask][:limit]]
    more = int(mask.sum()) - len(rows)
    return ", ".join(rows) + (f" (+{more} more)" if more > 0 else "")


def to_numeric(series: pd.Series, *, coerce: bool = False) -> np.ndarray:
    """Parse a column as float64; text that is not a number is an error naming the rows."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64").to_numpy()
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    parsed = pd.to_numeric(series, errors="coerce")
    bad = parsed.isna().to_numpy() & series.notna().to_numpy()
    bad &= ~series.astype(str).str.strip().isin(["", "nan", "NaN", "NA", "null", "None"]).to_numpy()
    if bad.any() and not coerce:
        sample = ", ".join(repr(v) for v in series[bad].head(3).tolist())
        raise DataError(f"Column '{series.name}' is numeric but has text that is not a number "
                        f"in row(s) {_row_list(series.index, bad)}",
                        expected="numbers (or empty cells for missing values)",
                        received=sample,
                        fix=f"clean those cells, or declare '{series.name}' with "
                            "`type: numeric, errors: coerce` to treat them as missing")
    return parsed.to_numpy(dtype="float64", na_value=np.nan)


class NumericColumn:
    """Impute, clip outliers to training quantiles, and scale one numeric column."""

    type = "numeric"
    width = 1

    def __init__(self, name: str, impute: str = "median", clip: list[float] | None = None,
                 scale: str = "standard", errors: str = "raise") -> None:
        if impute not in {"median", "mean", "zero"}:
            raise ConfigError(f"Unknown impute strategy for column '{name}'",
                              expected="median, mean or zero", received=impute)
        if scale not in {"standard", "minmax", "none"}:
            raise ConfigError(f"Unknown scaling for column '{name}'",
                              expected="standard, minmax or none", received=scale)
        self.name, self.impute, self.clip, self.scale = name, impute, clip, scale
        self.coerce = errors == "coerce"
        self.fill = 0.0
        self.low = self.high = None
        self.center, self.spread = 0.0, 1.0

    def fit(self, series: pd.Series) -> NumericColumn:
        x = to_numeric(series, coerce=self.coerce)
        x = x[np.isfinite(x)]
        if self.impute == "median":
            self.fill = float(np.median(x))
        elif self.impute == "mean":
            self.fill = float(np.mean(x))
        if self.clip:
            self.low, self.high = (float(v) for v in np.quantile(x, self.clip))
            x = np.clip(x, self.low, self.high)
        if self.scale == "standard":
            self.center, self.spread = float(x.mean()), float(x.std())
        elif self.scale == "minmax":
            self.center, self.spread = float(x.min()), float(x.max() - x.min())
        if not np.isfinite(self.spread) or self.spread < 1e-12:
            self.spread = 1.0
        return self

    def transform(self, series: pd.Series) -> np.ndarray:
        x = to_numeric(series, coerce=self.coerce)
        x = np.where(np.isfinite(x), x, self.fill)
        if self.low is not None:
            x = np.clip(x, self.low, self.high)
        return ((x - self.center) / self.spread).astype(np.float32)[:, None]

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "impute": self.impute, "fill": self.fill,
                "clip": [self.low, self.high] if self.low is not None else None,
                "scale": self.scale, "center": self.center, "spread": self.spread,
                "errors": "coerce" if self.coerce else "raise"}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> NumericColumn:
        col = cls(s["name"], impute=s["impute"], scale=s["scale"], errors=s.get("errors", "raise"))
        col.fill, col.center, col.spread = s["fill"], s["center"], s["spread"]
        if s.get("clip"):
            col.low, col.high = s["clip"]
        return col


class CategoricalColumn:
    """One-hot encode the most frequent training categories; anything else is 'other'."""

    type = "categorical"

    def __init__(self, name: str, max_categories: int = 50, min_frequency: int = 1) -> None:
        self.name, self.max_categories, self.min_frequency = name, max_categories, min_frequency
        self.categories: list[str] = []

    @property
    def width(self) -> int:
        return len(self.categories) + 1  # the last slot is "unknown/other"

    @staticmethod
    def _as_text(series: pd.Series) -> pd.Series:
        return series.map(lambda v: MISSING if pd.isna(v) else str(v).strip())

    def fit(self, series: pd.Series) -> CategoricalColumn:
        counts = self._as_text(series).value_counts()
        counts = counts[counts >= self.min_frequency]
        self.categories = sorted(counts.index[: self.max_categories].tolist())
        return self

    def transform(self, series: pd.Series) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.categories)}
        codes = self._as_text(series).map(lambda v: index.get(v, len(self.categories)))
        out = np.zeros((len(series), self.width), np.float32)
        out[np.arange(len(series)), codes.to_numpy(dtype=np.int64)] = 1.0
        return out

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "categories": self.categories,
                "max_categories": self.max_categories, "min_frequency": self.min_frequency}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> CategoricalColumn:
        col = cls(s["name"], s.get("max_categories", 50), s.get("min_frequency", 1))
        col.categories = list(s["categories"])
        return col


class TfidfColumn:
    """Word n-grams plus character n-grams (within words), TF-IDF weighted.

    Built on scikit-learn's ``TfidfVectorizer``; only its vocabularies and IDF weights are
    stored. Character n-grams catch what word tokens miss in short, noisy text (spellings,
    numbers, "FR33"), which is where spam and review data live.
    """

    type = "text"
    mode = "tfidf"

    def __init__(self, name: str, ngrams: list[int] | tuple[int, int] = (1, 2),
                 max_features: int = 10000, min_df: int = 2, lowercase: bool = True,
                 char_ngrams: list[int] | tuple[int, int] | None = (2, 5),
                 char_max_features: int = 20000) -> None:
        self.name, self.ngrams = name, tuple(ngrams)
        self.max_features, self.min_df, self.lowercase = max_features, min_df, lowercase
        self.char_ngrams = tuple(char_ngrams) if char_ngrams else None
        self.char_max_features = char_max_features
        self.vocabulary: dict[str, int] = {}
        self.idf: list[float] = []
        self.char_vocabulary: dict[str, int] = {}
        self.char_idf: list[float] = []

    @property
    def width(self) -> int:
        return len(self.vocabulary) + len(self.char_vocabulary)

    def _vectorizer(self, char: bool = False, **extra):
        from sklearn.feature_extraction.text import TfidfVectorizer

        if char:
            return TfidfVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams,
                                   lowercase=self.lowercase, sublinear_tf=True,
                                   dtype=np.float32, **extra)
        return TfidfVectorizer(ngram_range=self.ngrams, lowercase=self.lowercase,
                               sublinear_tf=True, token_pattern=r"(?u)\b\w+\b|[$£€!?%]",
                               dtype=np.float32, **extra)

    @staticmethod
    def _texts(series: pd.Series) -> list[str]:
        return ["" if pd.isna(v) else str(v) for v in series]

    def fit(self, series: pd.Series) -> TfidfColumn:
        texts = self._texts(series)
        min_df = self.min_df if len(texts) >= 20 * self.min_df else 1
        try:
            vec = self._vectorizer(max_features=self.max_features, min_df=min_df).fit(texts)
        except ValueError:
            raise DataError(f"Text column '{self.name}' has no words to learn from",
                            received=f"{len(texts)} rows, e.g. {texts[:2]!r}",
                            fix="check the column, or declare it as categorical") from None
        self.vocabulary = {k: int(v) for k, v in vec.vocabulary_.items()}
        self.idf = [float(v) for v in vec.idf_]
        if self.char_ngrams:
            chars = self._vectorizer(True, max_features=self.char_max_features,
                                     min_df=min_df).fit(texts)
            self.char_vocabulary = {k: int(v) for k, v in chars.vocabulary_.items()}
            self.char_idf = [float(v) for v in chars.idf_]
        return self

    def sparse(self, series: pd.Series):
        """The TF-IDF matrix as scipy CSR (rows, width): word columns, then character ones."""
        import scipy.sparse as sp

        texts = self._texts(series)
        vec = self._vectorizer(vocabulary=self.vocabulary)
        vec.idf_ = np.asarray(self.idf, dtype=np.float32)
        blocks = [vec.transform(texts)]
        if self.char_vocabulary:
            chars = self._vectorizer(True, vocabulary=self.char_vocabulary)
            chars.idf_ = np.asarray(self.char_idf, dtype=np.float32)
            blocks.append(chars.transform(texts))
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def transform(self, series: pd.Series) -> np.ndarray:
        return self.sparse(series).toarray()

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "mode": self.mode,
                "ngrams": list(self.ngrams), "max_features": self.max_features,
                "min_df": self.min_df, "lowercase": self.lowercase,
                "char_ngrams": list(self.char_ngrams) if self.char_ngrams else None,
                "char_max_features": self.char_max_features,
                "vocabulary": self.vocabulary, "idf": self.idf,
                "char_vocabulary": self.char_vocabulary, "char_idf": self.char_idf}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> TfidfColumn:
        col = cls(s["name"], s["ngrams"], s["max_features"], s["min_df"], s["lowercase"],
                  s.get("char_ngrams"), s.get("char_max_features", 20000))
        col.vocabulary, col.idf = dict(s["vocabulary"]), list(s["idf"])
        col.char_vocabulary = dict(s.get("char_vocabulary") or {})
        col.char_idf = list(s.get("char_idf") or [])
        return col


TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class SequenceColumn:
    """Token ids for an Embedding model: 0 pads, 1 is out-of-vocabulary."""

    type = "text"
    mode = "sequence"

    def __init__(self, name: str, vocab_size: int = 20000, max_len: int | None = None,
                 lowercase: bool = True) -> None:
        self.name, self.vocab_size, self.max_len, self.lowercase = (
            name, vocab_size, max_len, lowercase)
        self.vocabulary: list[str] = []

    @property
    def width(self) -> int:
        return int(self.max_len or 0)

    def _tokens(self, value: Any) -> list[str]:
        text = "" if pd.isna(value) else str(value)
        return TOKEN.findall(text.lower() if self.lowercase else text)

    def fit(self, series: pd.Series) -> SequenceColumn:
        tokenised = [self._tokens(v) for v in series]
        counts = Counter(t for toks in tokenised for t in toks)
        self.vocabulary = [t for t, _ in counts.most_common(self.vocab_size - 2)]
        if self.max_len is None:
            lengths = [len(t) for t in tokenised] or [1]
            self.max_len = int(min(256, max(8, np.percentile(lengths, 95))))
        return self

    def transform(self, series: pd.Series) -> np.ndarray:
        index = {t: i + 2 for i, t in enumerate(self.vocabulary)}
        out = np.zeros((len(series), self.max_len), np.int64)
        for r, value in enumerate(series):
            ids = [index.get(t, 1) for t in self._tokens(value)][: self.max_len]
            out[r, : len(ids)] = ids
        return out

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "mode": self.mode,
                "vocab_size": self.vocab_size, "max_len": self.max_len,
                "lowercase": self.lowercase, "vocabulary": self.vocabulary}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> SequenceColumn:
        col = cls(s["name"], s["vocab_size"], s["max_len"], s["lowercase"])
        col.vocabulary = list(s["vocabulary"])
        return col


def column_from_state(s: dict[str, Any]):
    """Rebuild a fitted column encoder from its JSON state."""
    if s["type"] == "numeric":
        return NumericColumn.from_state(s)
    if s["type"] == "categorical":
        return CategoricalColumn.from_state(s)
    if s["type"] == "text":
        return (SequenceColumn if s.get("mode") == "sequence" else TfidfColumn).from_state(s)
    raise DataError("Unknown column type in the saved preprocessing state",
                    expected="numeric, categorical or text", received=s.get("type"),
                    fix="re-train the model with this version of Lepton")
