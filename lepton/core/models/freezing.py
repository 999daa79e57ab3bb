"""``trainable``: which weights training may change (Keras' freezing, on torch's
``requires_grad``).

A layer's ``trainable`` flag is the truth; a parameter is trainable when every layer on its
path from the model is. Setting ``model.trainable`` sets every sublayer (as Keras does), and
``compile`` applies the flags, so per-layer changes take effect at the next ``compile`` (as
in Keras). A frozen BatchNormalization also runs in inference mode (see its docstring).
Parameters a user froze by hand (``requires_grad_(False)``) are left as they are.
"""

from __future__ import annotations

from typing import Any

from torch import nn

_FROZEN = "_lepton_frozen"  # marks a parameter frozen by a flag, so unfreezing can undo it


def apply_trainable(module: nn.Module) -> None:
    """Set ``requires_grad`` of every parameter under ``module`` from the ``trainable``
    flags on its path (parameters frozen by hand stay frozen)."""

    def walk(mod: nn.Module, parent_ok: bool) -> None:
        ok = parent_ok and bool(getattr(mod, "trainable", True))
        for param in mod.parameters(recurse=False):
            if not ok and param.requires_grad:
                param.requires_grad_(False)
                setattr(param, _FROZEN, True)
            elif ok and getattr(param, _FROZEN, False):
                param.requires_grad_(True)
                setattr(param, _FROZEN, False)
        for child in mod.children():
            walk(child, ok)

    walk(module, True)


def set_trainable(model: Any, value: bool) -> None:
    """Keras' ``model.trainable = value``: every sublayer gets the flag, then it applies."""
    for module in model.modules():
        if module is model:
            continue
        if "_trainable" in module.__dict__:  # a nested model: its property's storage
            module.__dict__["_trainable"] = bool(value)
        elif hasattr(module, "trainable"):
            module.trainable = bool(value)
    apply_trainable(model)


def trainable_count(module: nn.Module) -> int:
    """Parameters that training would change once the flags apply."""
    total = 0

    def walk(mod: nn.Module, parent_ok: bool) -> None:
        nonlocal total
        ok = parent_ok and bool(getattr(mod, "trainable", True))
        total += sum(p.numel() for p in mod.parameters(recurse=False)
                     if ok and (p.requires_grad or getattr(p, _FROZEN, False)))
        for child in mod.children():
            walk(child, ok)

    walk(module, True)
    return total
