"""Runtimes: one class per way of running an artifact, chosen by its manifest's ``runtime``.

``open_runtime(path)`` reads the manifest and builds the runtime it names. Today that is
``torch`` (eager PyTorch); ONNX Runtime and others add a module here and a line to
``RUNTIMES``, and the server serves them unchanged.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from lepton.artifact.runtimes.base import Item, Result, Runtime
from lepton.errors import ArtifactError

RUNTIMES = {"torch": "lepton.artifact.runtimes.torch:TorchRuntime",
            "onnxruntime": "lepton.artifact.runtimes.onnxruntime:OnnxRuntime"}

__all__ = ["RUNTIMES", "Item", "Result", "Runtime", "open_runtime", "runtime_class"]


def runtime_class(name: str) -> Any:
    """The runtime class registered under ``name``."""
    try:
        module, attr = RUNTIMES[name].split(":")
    except KeyError:
        raise ArtifactError("The artifact needs a runtime this Lepton does not have",
                            expected=sorted(RUNTIMES), received=repr(name)[:80],
                            fix="upgrade Lepton, or serve the artifact's fp32 parent") from None
    return getattr(importlib.import_module(module), attr)


def open_runtime(path: str | Path, *, name: str | None = None,
                 version: str | None = None, runtime: str | None = None,
                 threads: int | None = None) -> Runtime:
    """Load the artifact at ``path`` into the runtime its manifest names, or into
    ``runtime`` where the artifact holds that runtime's files too (an fp32 ONNX export keeps
    its torch weights; an INT8 one has none). ``threads`` goes to runtimes that take it."""
    from lepton.artifact.manifest import read_manifest

    path = Path(path)
    manifest = read_manifest(path)
    chosen = runtime or manifest.runtime["name"]
    cls = runtime_class(chosen)
    if chosen != manifest.runtime["name"] and chosen == "torch" and \
            "weights.safetensors" not in (manifest.document.get("checksums") or {}):
        raise ArtifactError("This artifact cannot run on the torch runtime",
                            expected="an artifact with weights.safetensors",
                            received=f"variant {manifest.variant['name']} "
                                     f"({manifest.runtime['name']} only)",
                            fix=f"use --runtime {manifest.runtime['name']}, or its fp32 parent")
    extra = {"threads": threads} if threads and getattr(cls, "takes_threads", False) else {}
    return cls.from_manifest(manifest, name=name or path.name, version=version, **extra)
