"""Retraining a tensor model (images: the demo's MNIST CNN, or any ``model.save`` artifact
without a ``lepton train`` configuration) on feedback-labelled traffic.

The original data is an ``.npz`` with ``x_train, y_train, x_test, y_test`` (model-ready
arrays: for the demo, 28×28×1 floats in [0, 1]); production rows are the inputs the server
kept (``--log-inputs``, V2 infer: one tensor per row) joined to their feedback labels. The
challenger is the champion's network (its stored architecture, weights and compile settings,
optimizer included) trained further on original ∪ production-train rows; both models are
then scored on the same production holdout and the same original test rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from lepton.errors import ConfigError, DataError


def is_tensor_model(champion: dict[str, Any]) -> bool:
    """A model without a ``lepton train`` configuration (retrained here)."""
    config = ((champion.get("training") or {}).get("config") or {})
    return not config.get("target")


def load_original(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if data.suffix != ".npz" or not data.is_file():
        raise ConfigError("A tensor model retrains on an .npz of model-ready arrays",
                          expected="x_train, y_train, x_test, y_test", received=str(data),
                          fix="np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    with np.load(data, allow_pickle=False) as arrays:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
        if missing:
            raise DataError("The original data lacks arrays", expected="x_train, y_train, "
                            "x_test, y_test", received=sorted(arrays.files))
        return tuple(np.asarray(arrays[k]) for k in ("x_train", "y_train", "x_test",
                                                      "y_test"))  # type: ignore[return-value]


def production_rows(store: Any, name: str, since: float | None, labels: list[Any],
                    shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, label indices) of the labelled predictions whose inputs were kept."""
    from lepton.store._crypt import decryptor
    from lepton.store._monitor import window_rows

    names = [str(v) for v in labels]
    labelled = [r for r in window_rows(store, name, since=since, decrypt=decryptor())
                if r["label"] is not None]
    if not labelled:
        raise DataError(f"No feedback labels for '{name}' to retrain on",
                        fix="send labels with lepton feedback add (or POST /v1/feedback)")
    xs, ys = [], []
    for row in labelled:
        sample = row["input_sample"]
        if not (isinstance(sample, dict) and len(sample) == 1):
            continue
        label = str(row["label"])
        if label not in names:
            continue
        x = np.asarray(next(iter(sample.values())), dtype=np.float32)
        if x.shape == shape:
            xs.append(x)
            ys.append(names.index(label))
    if not xs:
        raise DataError(f"{len(labelled)} predictions of '{name}' have feedback, but their "
                        "inputs were not kept", fix="serve with --log-inputs (V2 infer "
                        "route) so labelled traffic can be trained on")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def correct(path: str | Path, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row correctness of an artifact's predicted class."""
    if not len(x):
        return np.zeros(0, dtype=bool)
    outputs = correct_outputs(path, np.asarray(x, dtype=np.float32))
    return outputs.reshape(len(x), -1).argmax(axis=1) == np.asarray(y)


def train_challenger(champion_path: str | Path, x: np.ndarray, y: np.ndarray, out: Path,
                     epochs: int, seed: int, note: dict[str, Any]) -> Path:
    """The champion's network trained further on ``x, y``; written to ``out`` with the
    champion's metadata (labels, preprocessing) and a lineage naming its parent."""
    import torch

    from lepton.artifact.manifest import read_manifest
    from lepton.atomic import atomic_directory
    from lepton.core import load_model

    torch.manual_seed(seed)
    model = load_model(champion_path)
    if getattr(model, "compiled", None) is None:
        raise ConfigError("The champion has no stored compile settings to retrain with",
                          fix="save models after model.compile(...)")
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, seed=seed)
    manifest = read_manifest(champion_path)
    metadata = dict(getattr(model, "metadata", None) or {})
    metadata["lineage"] = {**note, "parent": str(champion_path)}
    with atomic_directory(out) as tmp:
        model.to("cpu").save(tmp, metadata=metadata,
                               reference=manifest.reference is None)  # else written below
    if manifest.reference is not None:  # monitored against what it was trained on now
        from lepton.artifact.save import write_reference
        from lepton.sketch.reference import reference_for

        idx = np.random.default_rng(seed).permutation(len(x))[:5000]
        sample = np.asarray(x[idx], dtype=np.float32)
        outputs = correct_outputs(out, sample)
        embeddings = None  # the challenger's own embeddings: its head sees other vectors
        if sample.ndim >= 3 or "embeddings" in manifest.reference:
            from lepton.core.embeddings import penultimate

            embeddings = penultimate(model, sample, rows=256, seed=seed)
        write_reference(out, reference_for(
            sample, outputs, input_name=manifest.inputs[0].name,
            output_name=manifest.outputs[0].name if manifest.outputs else "output",
            task=metadata.get("task"), labels=metadata.get("labels"),
            embeddings=embeddings))
    return out


def correct_outputs(path: str | Path, x: np.ndarray) -> np.ndarray:
    from lepton.artifact.predictor import Predictor

    return Predictor.from_artifact(path).forward(x)
