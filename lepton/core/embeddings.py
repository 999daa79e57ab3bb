"""``penultimate``: what a classifier's head sees, for embedding drift on images and text.

Per-pixel or per-token statistics miss most shifts a vision or text model cares about; the
input of the last dense layer (the "penultimate-layer embedding") summarises what the network
extracted, so the monitor compares those between training data and traffic (MMD).

The head is found by running the model: every module with its own parameters gets a forward
pre-hook, and the last one to run is the head when it is Dense-like (Lepton's ``Dense`` or a
``torch.nn.Linear``). This works the same for Sequential, functional and subclassed models
and for plain PyTorch code inside them. A ``Dense`` that flattens image feature maps sees the
flattened vector, as its own ``linear`` does. The model is left as it was: hooks removed,
train/eval mode restored, no gradient, no device move.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lepton.core.device import module_device
from lepton.core.training.feeding import model_inputs, positive_int


def _is_head(module: nn.Module) -> bool:
    """A fully connected layer: a 2-D weight applied to the last axis."""
    if isinstance(module, nn.Linear):
        return True
    kernel = getattr(module, "kernel", None)
    return (type(module).__name__ == "Dense" and isinstance(kernel, torch.Tensor)
            and kernel.dim() == 2)


def _flat(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1) if getattr(module, "flatten_input", False) else x


def sample_rows(n: int, rows: int, seed: int) -> np.ndarray:
    """Sorted indices of a deterministic sample of up to ``rows`` of ``n`` rows."""
    if n <= rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=rows, replace=False))


def penultimate(model: Any, x: Any, *, rows: int = 256, batch_size: int = 256,
                seed: int = 0) -> np.ndarray | None:
    """The head's input for a seeded sample of up to ``rows`` rows of ``x`` (an array, a list
    or a dict of arrays, as ``Model.predict`` takes), float32 ``(n, d)``; None when the last
    parametrised layer to run is not Dense-like or its input is not 2-D."""
    rows = positive_int(rows, "rows")
    batch_size = positive_int(batch_size, "batch_size")
    xs = model_inputs(model, x, "penultimate")
    n = int(xs[0].shape[0]) if xs else 0
    if n == 0:
        return None
    index = torch.from_numpy(sample_rows(n, rows, seed))
    xs = [t[index] for t in xs]
    device = module_device(model) or torch.device("cpu")
    order: list[tuple[nn.Module, torch.Tensor | None]] = []

    def hook(module: nn.Module, args: tuple) -> None:
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        order.append((module, first))

    if not getattr(model, "built", True):
        model.build_for_sample([t[:2].to(device) for t in xs])  # lazy weights, as predict does
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    handles = [m.register_forward_pre_hook(hook) for m in owners]
    modes = [(m, m.training) for m in model.modules()]  # per module: some may be frozen
    parts: list[np.ndarray] = []
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, len(index), batch_size):
                order.clear()
                batch = [t[start:start + batch_size].to(device) for t in xs]
                model.run_outputs(batch)
                if not order:
                    return None
                head, seen = order[-1]
                if seen is None or not _is_head(head):
                    return None
                seen = _flat(head, seen)
                if seen.dim() != 2:
                    return None
                parts.append(seen.detach().float().cpu().numpy())
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
