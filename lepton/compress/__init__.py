"""Compression and export: model (or artifact) in, new artifact out, each one measured.

``export`` (ONNX, symbolic batch axis), ``quantize`` (INT8 through ONNX Runtime, static QDQ
or dynamic, chosen by layer type), ``prune`` (structured: channels and units removed; or
masks), ``distill`` (batchmean KL × T², half-width student) and ``compress`` (make, measure,
gate and register the variants: ``lepton compress``). Names load on first use.
"""

from __future__ import annotations

from lepton import lazy_getattr

_LAZY = {
    "export": "lepton.compress.onnx_export",
    "quantize": "lepton.compress.int8",
    "prune": "lepton.compress.pruning",
    "distill": "lepton.compress.distillation",
    "compress": "lepton.compress.run",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
