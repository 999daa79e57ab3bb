"""What a compression step starts from and what it writes: models, artifacts, lineage.

Every step takes a model, an artifact path or a ``Source`` (a loaded artifact that remembers
its manifest and registry reference) and writes a *new* artifact: the parent is never changed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton.errors import ArtifactError, ConfigError


@dataclass
class Source:
    """A model with what its artifact said about it (empty for an in-memory model)."""

    model: Any
    path: Path | None = None
    document: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None  # "name:version" when it came from the registry

    @property
    def variant(self) -> dict[str, Any]:
        return self.document.get("variant") or {"name": "fp32", "transforms": []}

    @property
    def lineage(self) -> dict[str, Any]:
        return self.document.get("lineage") or {}

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.document.get("metadata") or getattr(self.model, "metadata", {}) or {})


def as_source(model: Any) -> Source:
    """A Source from a Model, an artifact path or a Source."""
    if isinstance(model, Source):
        return model
    if isinstance(model, (str, Path)):
        from lepton.artifact.manifest import read_manifest
        from lepton.core.saving import WEIGHTS, load_network

        manifest = read_manifest(model)
        if WEIGHTS not in (manifest.document.get("checksums") or {}):
            raise ArtifactError(f"'{model}' has no torch weights to compress",
                                received=f"variant {manifest.variant['name']} "
                                         f"({manifest.runtime['name']})",
                                fix="compress its fp32 parent instead")
        net = load_network(manifest.path, manifest.document)
        return Source(net, manifest.path, manifest.as_v2())
    if hasattr(model, "input_spec") and hasattr(model, "get_config"):
        return Source(model)
    raise ConfigError("Compression takes a Lepton model or an artifact directory",
                      received=type(model).__name__, fix="pass a Model or a path")


def as_model(model: Any) -> Any:
    return as_source(model).model


def artifact_digest(path: Path) -> str:
    """The registry's digest of an artifact directory (every relative path and its bytes)."""
    digest = hashlib.sha256()
    files = sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file())
    for relative, file in files:
        digest.update(relative.encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def lineage_for(source: Source, transform: str, given: dict[str, Any] | None) -> dict[str, Any]:
    """Parent (registry ref, else path), its digest, the transform and the data digest."""
    lineage: dict[str, Any] = {"transform": transform}
    if source.ref or source.path is not None:
        lineage["parent"] = source.ref or str(source.path)
    if source.path is not None:
        lineage["parent_digest"] = artifact_digest(source.path)
    if source.lineage.get("data_digest"):
        lineage["data_digest"] = source.lineage["data_digest"]
    lineage.update({k: v for k, v in (given or {}).items() if v is not None})
    return lineage


def chain(source: Source, name: str, step: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """The new variant: its name and the parent's transforms plus this one."""
    transforms = list(source.variant.get("transforms", []))
    transforms.append({"name": step[0], "settings": step[1]})
    return {"name": name, "transforms": transforms}


def file_size(path: Path) -> int:
    """Bytes of the files the artifact's runtime reads (its serving footprint)."""
    from lepton.artifact.manifest import read_manifest

    manifest = read_manifest(path)
    return sum(os.path.getsize(path / f) for f in manifest.runtime.get("files", []))
