"""Evaluate a saved model on a labelled file or image folder (``lepton evaluate``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from lepton.errors import DataError, LeptonWarning


def load_labelled(predictor: Any, data: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model input, targets, info) from a table with the target column or an image folder."""
    from lepton.data import read_table, source_kind

    data = Path(data)
    if source_kind(data) == "images":
        from lepton.data import build_cache, scan_folder

        if predictor.kind != "image":
            raise DataError(f"'{data}' is an image folder but the model takes "
                            f"{predictor.kind} data", fix="pass a table file")
        folder = scan_folder(data)
        rows = folder.splits.get("test") or folder.splits.get("all") or folder.files
        unknown = sorted({label for _, label in rows} - {str(v) for v in predictor.labels})
        if unknown:
            raise DataError("The folder has classes the model never saw",
                            expected=predictor.labels, received=unknown)
        pipe = predictor.pipeline
        classes = [str(v) for v in predictor.labels]
        cache = build_cache(rows, classes, pipe.size, pipe.channels)
        try:
            x = pipe.scale(cache.images)
        finally:
            cache.close()
        return x, cache.labels, {"skipped corrupt images": len(cache.skipped)}
    if predictor.pipeline is None or predictor.kind == "image":
        raise DataError(f"'{data}' is a table but the model takes images",
                        fix="pass an image folder")
    frame = read_table(data)
    target = predictor.pipeline.target
    from lepton.data.loaders import require_columns

    require_columns(frame, [target], where=f"'{data.name}'")
    missing = frame[target].isna()
    if missing.any():
        warnings.warn(f"Skipping {int(missing.sum())} row(s) with no '{target}'", LeptonWarning,
                      stacklevel=2)
        frame = frame[~missing]
    return (predictor.prepare(frame.drop(columns=[target])), frame[target],
            {"rows": len(frame)})


def evaluate_path(model_dir: str | Path, data: str | Path,
                  report: str | Path | None = None, runtime: str | None = None) -> dict[str, Any]:
    """Metrics of the model at ``model_dir`` on ``data``; optionally an HTML report too."""
    from lepton.artifact.predictor import Predictor
    from lepton.evaluate.report import evaluate_outputs, save_report

    predictor = Predictor.from_artifact(model_dir, runtime=runtime)
    x, y, info = load_labelled(predictor, data)
    outputs = predictor.forward(np.asarray(x))
    task = predictor.task_for(outputs)
    y_true = predictor.encode_target(y, task)
    metrics, figures = evaluate_outputs(task, y_true, outputs, predictor.labels,
                                        predictor.metadata.get("history"),
                                        threshold=predictor.threshold)
    metrics.update(info)
    if report:
        save_report(Path(report), f"Lepton evaluation: {Path(model_dir).name} on "
                    f"{Path(data).name}", metrics, figures,
                    {"model": str(model_dir), "data": str(data), "task": task, **info})
    return metrics
