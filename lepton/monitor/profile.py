"""A reference profile from data, for artifacts written before training wrote one
(``lepton monitor --reference DATA``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lepton.errors import ConfigError
from lepton.sketch.reference import reference_for

__all__ = ["profile_data", "reference_for"]


def profile_data(record: dict[str, Any], data: Path, rows: int = 20_000) -> dict[str, Any]:
    """Profile a table through a registered version's own preprocessing and model."""
    from lepton.artifact.manifest import read_manifest
    from lepton.artifact.predictor import Predictor
    from lepton.data import read_table

    if not data.is_file():
        raise ConfigError("--reference takes a table file (CSV, Parquet...) or a profile .json",
                          received=str(data), fix="pass the model's training data file")
    manifest = read_manifest(record["path"])
    predictor = Predictor.from_artifact(record["path"])
    if predictor.pipeline is None or predictor.kind == "image":
        raise ConfigError("Profiling from data needs a table model with saved preprocessing",
                          received=predictor.kind, fix="pass a profile .json instead")
    frame = read_table(data)
    frame = frame.sample(n=min(rows, len(frame)), random_state=0) if len(frame) > rows else frame
    frame = frame[[c for c in predictor.pipeline.input_columns if c in frame.columns]]
    x = predictor.prepare(frame)
    outputs = predictor.forward(x)
    ref = reference_for(x, outputs, input_name=manifest.inputs[0].name,
                        output_name=manifest.outputs[0].name if manifest.outputs else "output",
                        task=predictor.task, labels=predictor.labels, frame=frame)
    ref["model"] = {"name": record["name"], "version": record["version"]}
    return ref
