"""``model.summary()``: layers, output shapes (channels-last, as users think of them),
parameter counts (trainable and frozen), and what Lepton did on its own (e.g. flattening
before a Dense)."""

from __future__ import annotations

import io
from typing import Any

from lepton.core.models.freezing import trainable_count
from lepton.errors import ConfigError


def _shape(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return ", ".join(_shape(s) for s in shape)
    return str((None, *shape[1:]))


def summarize(model: Any, print_fn: Any = None) -> str:
    from rich.console import Console
    from rich.table import Table

    if not model.built:
        raise ConfigError(f"Model '{model.name}' is not built yet, so its shapes are unknown",
                          fix="give the first layer input_shape=..., or call fit/predict first")
    layers = list(getattr(model, "stack", None) or
                  (model.graph.layers if model.graph is not None else model.children()))
    table = Table(title=f"Model: {model.name}", title_justify="left")
    table.add_column("Layer (type)")
    table.add_column("Output shape")
    table.add_column("Params", justify="right")
    table.add_column("Note")
    for layer in layers:
        name = getattr(layer, "name", type(layer).__name__)
        table.add_row(f"{name} ({type(layer).__name__})", _shape(getattr(layer, "output_shape",
                                                                          None)),
                      f"{sum(p.numel() for p in layer.parameters()):,}", getattr(layer, "note", ""))
    total = sum(p.numel() for p in model.parameters())
    trainable = trainable_count(model)  # from the ``trainable`` flags, before compile too
    buffer = io.StringIO()
    console = Console(file=buffer, width=110, force_terminal=False)
    console.print(table)
    console.print(f"Total params: {total:,} ({total * 4 / 1024:.1f} KB)  "
                  f"Trainable: {trainable:,}  Non-trainable: {total - trainable:,}")
    text = buffer.getvalue()
    (print_fn or print)(text.rstrip("\n"))
    return text
