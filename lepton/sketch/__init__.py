"""Reference sketches: the training-time statistics of a model's inputs and outputs, and live
traffic folded onto the same bins. NumPy only, so every stage from ``fit`` up can write or
read them: ``reference`` (the format, ``profile``, ``check_reference``) and ``folding``
(windows of traffic counted on the reference's bins, merged by adding)."""

from __future__ import annotations

from lepton import lazy_getattr

_LAZY = {
    "profile": "lepton.sketch.reference",
    "reference_for": "lepton.sketch.reference",
    "check_reference": "lepton.sketch.reference",
    "sketch": "lepton.sketch.reference",
    "fold": "lepton.sketch.folding",
    "fold_inputs": "lepton.sketch.folding",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
