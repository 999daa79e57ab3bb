"""The artifact's manifest, ``lepton.json``: the one place that documents every field.

Written by ``lepton.core.saving`` (the network's part) and ``lepton.artifact.save`` (the rest);
read here for every stage after training. Format version 2 fields:

- ``format`` / ``format_version``: ``"lepton.model"``, 2 (version 1 is still read: see below).
- ``lepton_version``, ``created_at``: who wrote it and when (UTC, ISO 8601).
- ``model``: the network: registered ``class_name``, its ``config``, ``input_shapes`` and
  ``input_dtypes`` (per input, without the batch axis).
- ``signature``: ``inputs`` and ``outputs``, each ``{"name", "shape", "datatype"}`` with the
  Open Inference Protocol datatype of every tensor (``FP32``, ``INT64``…) and -1 for the
  batch axis.
- ``compile``: the optimizer, loss, metrics and precision given to ``compile`` (or null).
- ``checksums``: SHA-256 of every file the runtime reads, by file name.
- ``variant``: what this artifact is relative to its parent: ``{"name": "fp32",
  "transforms": []}`` for a trained model; a compressed one names itself (``"int8-dynamic"``)
  and lists the chain of transforms that made it, each ``{"name", "settings"}``.
- ``runtime``: which runtime runs it and the files that runtime needs:
  ``{"name": "torch", "files": ["weights.safetensors"]}``; later ``"onnxruntime"`` with
  ``["model.onnx"]``. The server picks its runner by this name.
- ``lineage``: where it came from: ``parent`` (a registry reference or path) and
  ``parent_digest``, ``transform``, ``data_digest`` (of the training data), ``run_id``. Empty
  for a model trained from scratch outside a run.
- ``reference``: training-time statistics of inputs and outputs (see
  ``lepton.sketch.reference``), what ``lepton monitor`` compares traffic with. Written by
  ``lepton train`` (from the training data), by ``Model.save`` after ``fit`` (from a sample
  of up to 2,000 training rows that ``fit`` keeps: ``lepton.core.training.sample``; its
  ``sample`` part says how many rows of how many), or by whoever calls ``save_artifact``
  with one (an explicit reference wins); null for a model never fitted in this process
  until ``lepton monitor --reference DATA`` fills it.
- ``metadata``: free JSON: the fitted preprocessing, labels, task, threshold, metrics.

A version-1 manifest (Lepton 0.1) reads as version 2 with these defaults: variant ``fp32``,
runtime ``torch`` with the weights file, empty lineage, no reference; its outputs were FP32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton.artifact.signature import TensorSpec, specs
from lepton.core.saving import FORMAT_VERSION, WEIGHTS, read_document
from lepton.errors import ArtifactError
from lepton.sketch.reference import check_reference

FP32 = {"name": "fp32", "transforms": []}
LINEAGE_KEYS = ("parent", "parent_digest", "transform", "data_digest", "run_id")


def torch_runtime() -> dict[str, Any]:
    return {"name": "torch", "files": [WEIGHTS]}


@dataclass
class Manifest:
    """A checked, version-2 view of ``lepton.json`` (the raw JSON stays in ``document``)."""

    path: Path
    document: dict[str, Any]
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)

    @property
    def format_version(self) -> int:
        return int(self.document["format_version"])

    @property
    def variant(self) -> dict[str, Any]:
        return self.document.get("variant") or dict(FP32)

    @property
    def runtime(self) -> dict[str, Any]:
        return self.document.get("runtime") or torch_runtime()

    @property
    def lineage(self) -> dict[str, Any]:
        if self.format_version == 1:  # version 1 kept the training data's hash in metadata
            digest = (self.metadata.get("lineage") or {}).get("data_hash")
            return {"data_digest": digest} if digest else {}
        return self.document.get("lineage") or {}

    @property
    def reference(self) -> dict[str, Any] | None:
        return self.document.get("reference")

    @property
    def metadata(self) -> dict[str, Any]:
        return self.document.get("metadata") or {}

    def as_v2(self) -> dict[str, Any]:
        """The document with every version-2 field present (defaults filled in)."""
        return {**self.document, "format_version": FORMAT_VERSION, "variant": self.variant,
                "runtime": self.runtime, "lineage": self.lineage, "reference": self.reference,
                "signature": {"inputs": [s.as_json() for s in self.inputs],
                              "outputs": [s.as_json() for s in self.outputs]}}


def read_manifest(path: str | Path) -> Manifest:
    """Read and check ``lepton.json`` (version 1 or 2) without loading any weights."""
    path = Path(path)
    document = read_document(path)
    signature = document.get("signature") or {}
    if not isinstance(signature, dict):
        raise ArtifactError("The artifact's signature is not an object",
                            received=type(signature).__name__, fix="re-save the model")
    manifest = Manifest(path, document, specs(signature.get("inputs")),
                        specs(signature.get("outputs")))
    if not manifest.inputs:
        raise ArtifactError("The artifact has no input signature", received=path.name,
                            fix="re-save the model with a recent Lepton")
    for name in ("variant", "runtime", "lineage", "reference", "metadata"):
        value = document.get(name)
        if value is not None and not isinstance(value, dict):
            raise ArtifactError(f"The artifact's '{name}' is not an object",
                                received=type(value).__name__, fix="re-save the model")
    runtime = manifest.runtime
    if not isinstance(runtime.get("name"), str) or not isinstance(runtime.get("files", []),
                                                                   list):
        raise ArtifactError("The artifact's runtime is malformed",
                            expected='{"name": "torch", "files": [...]}',
                            received=repr(runtime)[:120])
    if manifest.reference is not None:
        check_reference(manifest.reference)
    check_lineage(document.get("lineage") or {})
    return manifest


def check_lineage(lineage: Any) -> dict[str, Any]:
    if not isinstance(lineage, dict):
        raise ArtifactError("Lineage is an object", received=type(lineage).__name__)
    unknown = sorted(set(lineage) - set(LINEAGE_KEYS))
    if unknown:
        raise ArtifactError("Unknown lineage fields", expected=list(LINEAGE_KEYS),
                            received=unknown, fix="put other facts in metadata")
    return {k: v for k, v in lineage.items() if v is not None}
