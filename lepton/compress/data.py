"""The data a compression run reads: held-out data to measure on, a calibration sample and
training data for fine-tuning and distillation, all as the model's own (preprocessed) input.

A spec is ``mnist[:train|test][:N]`` (the bundled digits, scaled as the demo trains them), an
``.npz`` file with arrays ``x`` and ``y`` (read without pickle), or a table / image folder read
through the artifact's saved preprocessing, as ``lepton evaluate`` reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lepton.errors import DataError


def load(spec: str | Path, model: Any, metadata: dict[str, Any], *,
         default_split: str = "test") -> tuple[list[np.ndarray], np.ndarray]:
    """(inputs, targets) for ``spec``; the inputs checked against the model's input shapes."""
    text = str(spec)
    if text.split(":")[0] == "mnist":
        xs, y = _mnist(text, default_split)
    elif text.endswith(".npz"):
        xs, y = _npz(Path(text))
    else:
        xs, y = _files(Path(text), model, metadata)
    check(xs, model, text)
    return xs, y


def _mnist(text: str, default_split: str) -> tuple[list[np.ndarray], np.ndarray]:
    from lepton.datasets import mnist

    parts = text.split(":")[1:]
    split = parts[0] if parts and parts[0] in ("train", "test") else default_split
    rest = [p for p in parts if p not in ("train", "test")]
    try:
        rows = int(rest[0]) if rest else None
    except ValueError:
        raise DataError("Cannot read the MNIST spec", expected="mnist[:train|test][:ROWS]",
                        received=text) from None
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    x, y = x[:rows], y[:rows]
    return [x[..., None].astype(np.float32) / np.float32(255)], y.astype(np.int64)


def _npz(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            x_keys = [k for k in names if k == "x" or k.startswith("x_")] or names[:1]
            y_key = "y" if "y" in names else (names[1] if len(names) > 1 else None)
            if y_key is None:
                raise DataError(f"'{path}' holds no targets", expected="arrays x and y",
                                received=names)
            return [archive[k] for k in x_keys], archive[y_key]
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read '{path}'", received=str(exc)[:160],
                        fix="save it with np.savez(path, x=inputs, y=targets)") from None


def _files(path: Path, model: Any, metadata: dict[str, Any]) -> tuple[list[np.ndarray], Any]:
    from lepton.artifact.predictor import Predictor
    from lepton.evaluate.run import load_labelled

    if not path.exists():
        raise DataError(f"No data at '{path}'", fix="pass a table, an image folder, an .npz "
                        "file or mnist[:test]")
    predictor = Predictor(model, metadata)
    if predictor.pipeline is None:
        raise DataError("This model saved no preprocessing, so files cannot be read for it",
                        received=str(path), fix="pass an .npz with the model's inputs x and y")
    x, y, _ = load_labelled(predictor, path)
    task = predictor.task_for(np.zeros((1, max(len(predictor.labels), 1))))
    return [np.asarray(x)], predictor.encode_target(y, task)


def check(xs: list[np.ndarray], model: Any, what: str) -> None:
    """Refuse arrays that cannot feed the model, saying which shape and dtype it takes."""
    spec = model.input_spec or []
    if len(xs) != len(spec):
        raise DataError(f"'{what}' has {len(xs)} input array(s) but the model takes "
                        f"{len(spec)}", fix="one array per model input")
    for i, (x, (shape, dtype)) in enumerate(zip(xs, spec)):
        if x.dtype.kind not in "fiub" or tuple(x.shape[1:]) != tuple(shape):
            raise DataError(f"Input {i} of '{what}' does not fit the model",
                            expected=f"(N, {', '.join(map(str, shape))}) {dtype}",
                            received=f"{tuple(x.shape)} {x.dtype}",
                            fix="pass the model's preprocessed inputs")
        xs[i] = np.ascontiguousarray(x, dtype=np.float32 if dtype.startswith("float")
                                     else np.int64)
