"""Where the model being compressed comes from: its artifact, registry name and ancestry.

A registry reference (``mnist``, ``mnist:2``, ``mnist@production``) names itself; an artifact
directory is looked up in the registry by its digest, so the variants of a registered model
become new versions of *that* model. A model whose own parent is gone from the registry still
compresses: the run notes that its parent is unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton.errors import LeptonError, NotFoundError

REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(:[0-9]+|@[A-Za-z0-9._-]+)?$")


@dataclass
class Where:
    path: Path
    name: str
    ref: str | None = None
    notes: list[str] = field(default_factory=list)


def _registry() -> Any:
    from lepton.registry import Registry
    from lepton.store import Store

    return Registry(Store.open())


def locate(model: str | Path, name: str | None = None) -> Where:
    """The artifact to compress, the registry name its variants join and notes on lineage."""
    from lepton.artifact.manifest import read_manifest
    from lepton.compress.source import artifact_digest

    path = Path(model).expanduser()
    if path.is_dir():
        path = path.resolve()
        where = Where(path, name or _safe(path.name))
        digest = artifact_digest(path) if (path / "lepton.json").is_file() else None
        for entry in _versions() if digest else []:
            if entry.get("digest") == digest:
                where.ref = f"{entry['name']}:{entry['version']}"
                where.name = name or entry["name"]
                break
    elif REF.match(str(model)):
        try:
            entry = _registry().resolve(str(model))
        except LeptonError:
            raise NotFoundError("No artifact directory or registered model of this name",
                                received=str(model), fix="pass an artifact directory or a "
                                "registry reference (lepton models list)") from None
        where = Where(Path(entry["path"]), name or entry["name"],
                      f"{entry['name']}:{entry['version']}")
    else:
        raise NotFoundError("No artifact directory at this path", received=str(model),
                            fix="pass the directory written by model.save() or lepton train")
    parent = read_manifest(where.path).lineage.get("parent")
    if parent and not _known(parent):
        where.notes.append(f"the parent of {where.ref or where.path.name} ({parent}) is not in "
                           "the registry: its lineage is unknown from here on")
    return where


def _versions() -> list[dict[str, Any]]:
    registry = _registry()
    return [v for m in registry.list_models() for v in registry.list_versions(m["name"])]


def _known(parent: str) -> bool:
    """True when ``parent`` (a registry reference or a path) still exists."""
    if Path(parent).is_dir():
        return True
    if not REF.match(parent):
        return False
    try:
        _registry().resolve(parent)
        return True
    except LeptonError:
        return False


def _safe(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", text).lstrip("._-")
    return cleaned[:128] or "model"
