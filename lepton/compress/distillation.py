"""Knowledge distillation: a smaller student learns from the teacher's softened outputs.

The loss is ``alpha * CE(student, labels) + (1 - alpha) * T² * KL(teacher_T || student_T)``
with the KL divergence averaged per *sample* (``reduction="batchmean"``; ``"mean"`` would also
divide by the number of classes) and scaled by T², which keeps the soft term's gradients the
same size whatever the temperature (Hinton et al., 2015). The teacher's logits are computed
once, before training, not again every epoch. The default student is the teacher with every
hidden Dense/conv layer at half its width (the output layer keeps its size).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lepton.errors import ConfigError, ShapeError


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float, alpha: float) -> torch.Tensor:
    """The distillation loss for one batch (see the module docstring)."""
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1),
                    F.log_softmax(teacher_logits / t, dim=1), reduction="batchmean",
                    log_target=True) * (t * t)
    return alpha * F.cross_entropy(student_logits, labels) + (1 - alpha) * soft


def half_student(teacher: Any) -> Any:
    """A fresh (untrained) copy of the teacher's architecture, hidden layers at half width."""
    from lepton.compress.pruning import WIDTH, _ends, _graph

    layers, consumers = _graph(teacher)
    by_name = {layer.name: layer for layer in layers}
    narrow = {layer.name for layer in layers if type(layer).__name__ in WIDTH
              and _ends(layer.name, by_name, consumers) is not None}
    config = copy.deepcopy(teacher.get_config())
    for spec in config["layers"]:
        if spec["config"]["name"] in narrow:
            key = WIDTH[spec["class_name"]]
            spec["config"][key] = max(1, int(spec["config"][key]) // 2)
    student = type(teacher).from_config(config)
    student.build_for([s for s, _ in teacher.input_spec], [d for _, d in teacher.input_spec])
    return student


def preset_student(teacher: Any, name: str) -> Any:
    """A fresh student built by a ``lepton train`` preset (``mlp-small``, ``cnn-small``,
    ``text-embedding``...) for the teacher's input and classes.

    The preset must fit the teacher's input: images (H, W, C) take the CNN presets, flat
    float vectors the MLP ones, token ids the sequence text presets (with the teacher's
    vocabulary size). Its output layer copies the teacher's (softmax or logits), so the
    teacher's loss, which the student inherits, still fits it."""
    from lepton.core.models import Sequential
    from lepton.train.presets import PRESETS

    shape, dtype = teacher.input_spec[0]
    tokens = not str(dtype).startswith("float")
    kind = "text" if tokens else ("image" if len(shape) == 3 else "tabular")
    fitting = sorted(n for n, p in PRESETS.items() if kind in p.kinds
                     and (not tokens or p.text_mode == "sequence"))
    if len(teacher.input_spec) != 1 or name not in fitting:
        what = "is not a lepton train preset" if name not in PRESETS else \
            "cannot be a student of this teacher"
        raise ConfigError(f"'{name}' {what}",
                          expected=f"'half' or one of {fitting}",
                          received=f"a teacher taking {kind} input {tuple(shape)} {dtype}")
    preset = PRESETS[name]
    options = dict(preset.options)
    if tokens:
        embedding = next(m for m in teacher.modules() if type(m).__name__ == "Embedding")
        options["vocab_size"] = int(embedding.input_dim)
    with torch.no_grad():
        example = torch.zeros((2, *shape), dtype=torch.int64 if tokens else torch.float32)
        classes = int(teacher.run_outputs([example], frozenset({0}))[0].shape[1])
    if classes < 2:
        raise ShapeError("Distillation needs a classifier with two or more outputs",
                         received=f"{classes} output", fix="prune a regression model instead")
    config = preset.build(tuple(shape), classes, "multiclass", options).get_config()
    head = teacher.get_config()["layers"][-1]["config"] if "layers" in \
        teacher.get_config() else {}
    if "softmax" not in str(head.get("activation", "")):
        config["layers"][-1]["config"].pop("activation", None)  # the teacher gives logits
    student = Sequential.from_config(config)
    student.build_for([tuple(shape)], [str(dtype)])
    return student


def logits(model: Any, x: np.ndarray, batch: int = 512) -> torch.Tensor:
    """The model's outputs before a final softmax, in inference mode."""
    model.eval()
    outs = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(x[start:start + batch]))
            outs.append(model.run_outputs([chunk], frozenset({0}))[0].float())
    return torch.cat(outs)


def train_student(student: Any, x: np.ndarray, y: np.ndarray, teacher_logits: Any = None, *,
                  temperature: float = 4.0, alpha: float = 0.1, epochs: int = 3,
                  batch_size: int = 64, learning_rate: float = 2e-3, seed: int = 0) -> Any:
    """Train ``student`` in place; without teacher logits it is plain training (alpha 1)."""
    labels = torch.as_tensor(_classes(y))
    xs = torch.from_numpy(np.ascontiguousarray(x))
    optimizer = torch.optim.Adam(student.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    student.train()
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=generator)
        for start in range(0, len(xs), batch_size):
            idx = order[start:start + batch_size]
            out = student.run_outputs([xs[idx]], frozenset({0}))[0]
            if teacher_logits is None:
                loss = F.cross_entropy(out, labels[idx])
            else:
                loss = kd_loss(out, teacher_logits[idx], labels[idx], temperature, alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return student.eval()


def _classes(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(1)
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise ShapeError("Distillation needs class labels", expected="integer classes or "
                         "one-hot rows", received=f"floats such as {y.reshape(-1)[:3]}",
                         fix="distill classifiers; for regression prune instead")
    return y.reshape(-1).astype(np.int64)


def distill(teacher: Any, student: Any = None, data: tuple[Any, Any] | None = None, *,
            path: str | Path, temperature: float = 4.0, alpha: float = 0.1, epochs: int = 3,
            batch_size: int = 64, seed: int = 0, lineage: dict[str, Any] | None = None) -> Path:
    """Train a student on ``data=(x, y)`` from ``teacher`` and write it at ``path``.

    ``student``: None or ``"half"`` (the teacher at half width), the name of a ``lepton
    train`` preset (:func:`preset_student`) or a built Model.
    """
    from lepton.artifact.save import save_artifact
    from lepton.compress.source import as_source, chain, lineage_for

    if data is None:
        raise ConfigError("Distillation needs training data", fix="pass data=(x, y)")
    if not (isinstance(temperature, (int, float)) and temperature > 0) or \
            not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
        raise ConfigError("Invalid distillation settings", expected="temperature > 0 and "
                          "0 <= alpha <= 1", received=f"temperature={temperature!r}, "
                          f"alpha={alpha!r}")
    source = as_source(teacher)
    torch.manual_seed(seed)
    if student in (None, "half"):
        model = half_student(source.model)
    elif isinstance(student, str):
        model = preset_student(source.model, student)
    else:
        model = student
    x, y = data
    x = np.asarray(x, dtype=np.float32) if np.asarray(x).dtype.kind == "f" else np.asarray(x)
    soft = logits(source.model, x)
    train_student(model, x, y, soft, temperature=temperature, alpha=alpha, epochs=epochs,
                  batch_size=batch_size, seed=seed)
    spec = source.document.get("compile") or (source.model.compiled.to_json()
                                              if getattr(source.model, "compiled", None) else None)
    if spec:
        from lepton.core.training.compiled import from_json

        model.compile(**from_json(spec))
    kind = "half" if student in (None, "half") else (student if isinstance(student, str)
                                                      else "given")
    settings: dict[str, Any] = {"student": kind,
                "temperature": temperature, "alpha": alpha, "epochs": epochs,
                "loss": "alpha*CE + (1-alpha)*T^2*KL(batchmean)",
                "params": int(sum(p.numel() for p in model.parameters()))}
    return save_artifact(model.to("cpu").eval(), path, metadata=source.metadata,
                         variant=chain(source, "distilled-" + kind,
                                       ("distill", settings)),
                         lineage=lineage_for(source, "distill", lineage))
