"""Writing artifacts: a trained model with its variant, runtime, lineage and reference, and
changes to the manifest of an artifact already written (the monitor filling its reference).

``Model.save`` writes the network's part alone; every stage that knows more (training runs,
compression, retraining) saves through ``save_artifact`` so that the manifest says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lepton.artifact.manifest import FP32, check_lineage, read_manifest, torch_runtime
from lepton.atomic import atomic_write_bytes
from lepton.core.saving import MANIFEST, save_model
from lepton.errors import ArtifactError
from lepton.sketch.reference import check_reference


def save_artifact(model: Any, path: str | Path, *, metadata: dict | None = None,
                  variant: dict[str, Any] | None = None, lineage: dict[str, Any] | None = None,
                  reference: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a version-2 artifact run by the torch runtime."""
    sections = {"variant": check_variant(variant or FP32), "runtime": torch_runtime(),
                "lineage": check_lineage(lineage or {}), "reference": reference}
    if reference is not None:
        check_reference(reference)
    return save_model(model, path, metadata=metadata, sections=sections)


def update_manifest(path: str | Path, **fields: Any) -> None:
    """Replace top-level manifest fields (``reference``, ``lineage``…) of an artifact in place;
    ``lepton.json`` is swapped atomically and the weights are not touched. A version-1
    manifest is upgraded to version 2 on the way."""
    manifest = read_manifest(path)
    if "lineage" in fields:
        check_lineage(fields["lineage"])
    if "variant" in fields:
        check_variant(fields["variant"])
    document = {**manifest.as_v2(), **fields}
    try:
        text = json.dumps(document, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ArtifactError("The manifest cannot be written as JSON", received=str(exc),
                            fix="pass only JSON values (no NaN, no objects)") from None
    atomic_write_bytes(Path(path) / MANIFEST, text.encode())


def write_reference(path: str | Path, reference: dict[str, Any]) -> None:
    """Store training-time statistics (``reference.profile(...)``) in the artifact."""
    update_manifest(path, reference=check_reference(reference))


def check_variant(variant: Any) -> dict[str, Any]:
    if not isinstance(variant, dict) or not isinstance(variant.get("name"), str) or \
            not isinstance(variant.get("transforms", []), list):
        raise ArtifactError("A variant names itself and lists its transforms",
                            expected='{"name": "int8-dynamic", "transforms": [{"name": ..., '
                                     '"settings": {...}}]}', received=repr(variant)[:120])
    for step in variant.get("transforms", []):
        if not isinstance(step, dict) or not isinstance(step.get("name"), str):
            raise ArtifactError("Each transform of a variant is an object with a name",
                                received=repr(step)[:120])
    return {"name": variant["name"], "transforms": list(variant.get("transforms", []))}
