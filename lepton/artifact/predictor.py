"""Raw records in, labelled predictions out, with the preprocessing saved in the artifact.

``Predictor.from_artifact(path)`` loads the model and rebuilds its fitted pipeline from
``metadata["preprocessing"]``; ``predict_records`` (the server's /v1 predict route) and
``predict_frame`` (``lepton predict``) apply exactly the steps training fitted, then map the
outputs to class names and probabilities (with the saved threshold) or to values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lepton.data.loaders import as_frame
from lepton.errors import DataError, LabelError


def probabilities(outputs: np.ndarray, n_classes: int) -> np.ndarray:
    """Model outputs -> class probabilities (rows, classes), whatever the head looks like."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1 or out.shape[-1] == 1:
        p = out.reshape(-1)
        if p.min() < 0 or p.max() > 1:  # a logit
            p = 1 / (1 + np.exp(-p))
        return np.stack([1 - p, p], axis=1)
    rows = out.sum(axis=1)
    if out.min() < 0 or not np.allclose(rows, 1, atol=1e-3):  # logits: softmax them
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return out[:, :n_classes]


class Predictor:
    """A loaded model plus its preprocessing and post-processing."""

    def __init__(self, model: Any, metadata: dict[str, Any], path: Path | None = None) -> None:
        from lepton.data import load_preprocessing

        self.model = model
        self.metadata = dict(metadata or {})
        self.path = path
        state = self.metadata.get("preprocessing")
        self.pipeline: Any = load_preprocessing(state) if state else None
        self.labels: list[Any] = list(self.metadata.get("labels") or
                                      (self.pipeline.labels if self.pipeline else []))
        self.task: str | None = self.metadata.get("task") or (
            self.pipeline.task if self.pipeline else None)
        self.threshold = float(self.metadata.get("threshold", 0.5))
        if hasattr(model, "eval"):
            model.eval()

    @classmethod
    def from_artifact(cls, path: str | Path, runtime: str | None = None) -> Predictor:
        """The artifact's model on its own runtime, or on ``runtime`` (torch, onnxruntime)."""
        from lepton.artifact.manifest import read_manifest
        from lepton.core import load_model

        if (runtime or read_manifest(path).runtime["name"]) != "torch":
            from lepton.artifact.runtimes import open_runtime

            runner = open_runtime(path, runtime=runtime)
            return cls(runner.module, runner.metadata, Path(path))
        model = load_model(path)
        return cls(model, getattr(model, "metadata", None) or {}, Path(path))

    # -- input -------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.pipeline.kind if self.pipeline else "array"

    def _records_frame(self, records: list) -> pd.DataFrame:
        columns = self.pipeline.input_columns
        rows = []
        for i, rec in enumerate(records):
            if isinstance(rec, dict):
                rows.append(rec)
            elif isinstance(rec, str) and len(columns) == 1:
                rows.append({columns[0]: rec})
            elif isinstance(rec, (list, tuple)) and len(rec) == len(columns):
                rows.append(dict(zip(columns, rec, strict=True)))
            else:
                raise DataError(f"Input {i} cannot be read as a row",
                                expected=f"an object with keys {columns}"
                                         + (" or a text string" if len(columns) == 1 else ""),
                                received=f"{type(rec).__name__}",
                                fix="send one JSON object per row")
        return pd.DataFrame.from_records(rows)

    def _image_records(self, records: list) -> list:
        out = []
        for rec in records:
            if isinstance(rec, dict):
                if len(rec) != 1:
                    raise DataError("An image record must hold one image",
                                    expected='{"image": "<base64>"}', received=sorted(rec)[:5])
                rec = next(iter(rec.values()))
            out.append(rec)
        return out

    def prepare(self, data: Any) -> np.ndarray:
        """Raw data (frame, records, images) or model-ready arrays -> the model's input."""
        if self.pipeline is None:
            return np.asarray(data, dtype=np.float32)
        if isinstance(data, np.ndarray) and data.dtype.kind in "fiu" and self._is_model_input(data):
            return data
        if self.kind == "image":
            if isinstance(data, np.ndarray) and data.ndim == 4:
                return self.pipeline.scale(data if data.dtype == np.uint8 else
                                           self.pipeline.decode(list(data)))
            return self.pipeline.transform(self._image_records(list(data)))
        frame = (self._records_frame(data) if isinstance(data, list)
                 else as_frame(data, columns=self.pipeline.input_columns
                               if isinstance(data, np.ndarray) else None))
        return self.pipeline.transform(frame)

    def _is_model_input(self, data: np.ndarray) -> bool:
        """True for arrays already preprocessed (the model's input shape, not raw columns)."""
        if self.kind == "image":
            return data.dtype.kind == "f" and tuple(data.shape[1:]) == self.pipeline.input_shape
        if self.kind == "text":
            return data.ndim == 2 and data.shape[1] == self.pipeline.width
        width, n_columns = self.pipeline.width, len(self.pipeline.input_columns)
        return data.ndim == 2 and data.shape[1] == width and width != n_columns

    # -- model -------------------------------------------------------------------------------
    def forward(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Run the model in inference mode, in batches; returns the outputs as NumPy."""
        import torch

        outs = []
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size]))
                y = self.model(chunk)
                if isinstance(y, (list, tuple)):
                    y = y[0]
                outs.append(y.float().cpu().numpy())
        if not outs:
            return np.zeros((0, max(len(self.labels), 1)), np.float32)
        return np.concatenate(outs)

    def task_for(self, outputs: np.ndarray) -> str:
        if self.task:
            return self.task
        return "regression" if np.ndim(outputs) == 1 or np.shape(outputs)[-1] == 1 \
            and not self.labels else ("binary" if len(self.labels) == 2 else "multiclass")

    def encode_target(self, y: Any, task: str) -> np.ndarray:
        """Targets as class indices (names mapped through the saved labels) or floats."""
        series = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y).reshape(-1))
        if task == "regression":
            return series.to_numpy(dtype=np.float64)
        if self.pipeline is not None and self.labels and hasattr(self.pipeline, "encode_target"):
            return self.pipeline.encode_target(series)
        if self.labels:
            index = {str(v): i for i, v in enumerate(self.labels)}
            keys = series.map(lambda v: index.get(str(v)))
            if keys.notna().all():
                return keys.to_numpy(dtype=np.int64)
        if pd.api.types.is_integer_dtype(series):
            return series.to_numpy(dtype=np.int64)
        raise LabelError("Cannot match the targets to the model's classes",
                         expected=f"class indices or names in {self.labels}",
                         received=series.head(3).tolist())

    # -- output ------------------------------------------------------------------------------
    def postprocess(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        """Outputs -> one dict per row: label and probabilities, or a value."""
        task = self.task_for(outputs)
        if task == "regression":
            values = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)[:, 0]
            return [{"value": float(v)} for v in values]
        labels = self.labels or list(range(np.shape(outputs)[-1]))
        proba = probabilities(outputs, len(labels))
        if len(labels) == 2:
            index = (proba[:, 1] >= self.threshold).astype(np.int64)
        else:
            index = proba.argmax(axis=1)
        names = [str(v) for v in labels]
        return [{"label": labels[k], "probabilities": dict(zip(names, map(float, p),
                                                                strict=True))}
                for k, p in zip(index, proba, strict=True)]

    def predict_records(self, records: list[dict | str | bytes]) -> list[dict[str, Any]]:
        """The server's entry point: raw records -> one result dict per record."""
        if not records:
            return []
        return self.postprocess(self.forward(self.prepare(list(records))))

    def predict_frame(self, frame: pd.DataFrame | list) -> pd.DataFrame:
        """For ``lepton predict``: a table (or list of images) -> a table of predictions."""
        results = self.postprocess(self.forward(self.prepare(frame)))
        if results and "value" in results[0]:
            return pd.DataFrame({"prediction": [r["value"] for r in results]})
        out = pd.DataFrame({"prediction": [r["label"] for r in results]})
        for name in (str(v) for v in self.labels):
            out[f"p_{name}"] = [r["probabilities"][name] for r in results]
        return out
