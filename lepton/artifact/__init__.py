"""The model artifact: the hand-off between every stage after training.

Modules, one job each: ``manifest`` (``lepton.json`` v2, the v1 reader, the field reference),
``save`` (artifacts with variant, runtime, lineage and reference; manifest updates),
``reference`` (lepton train's reference profile; the sketches are ``lepton.sketch``),
``signature`` (named OIP tensors), ``predictor`` (raw records in, labelled predictions out),
``predict_files`` (``lepton predict``) and ``runtimes`` (one class per runtime, chosen by the
manifest). The network's own serialization stays in ``lepton.core.saving``. Names load on first use.
"""

from __future__ import annotations

from lepton import lazy_getattr

_LAZY = {
    "Manifest": "lepton.artifact.manifest",
    "read_manifest": "lepton.artifact.manifest",
    "save_artifact": "lepton.artifact.save",
    "update_manifest": "lepton.artifact.save",
    "write_reference": "lepton.artifact.save",
    "profile": "lepton.sketch.reference",
    "TensorSpec": "lepton.artifact.signature",
    "Predictor": "lepton.artifact.predictor",
    "predict_path": "lepton.artifact.predict_files",
    "Runtime": "lepton.artifact.runtimes",
    "open_runtime": "lepton.artifact.runtimes",
}


__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
