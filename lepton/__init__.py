"""Lepton: data -> train/tune -> evaluate -> compress -> serve -> feedback -> retrain.

``import lepton`` is light; the parts load on first use (``lepton.core``, ``lepton.datasets``...).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

# Every public module and subpackage, in stage order (tests/test_package.py keeps it complete).
_LAZY = {name: f"lepton.{name}" for name in [
    "errors", "atomic", "sketch", "core", "data", "datasets", "artifact", "evaluate", "store",
    "registry", "compress", "train", "tune", "serve", "client", "monitor", "retrain", "testing",
    "demo", "cli",
]}
_LAZY_NAMES = {  # name -> module that defines it
    "Client": "lepton.client",
    "LeptonError": "lepton.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(_LAZY[name])
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'lepton' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY, *_LAZY_NAMES]


def lazy_getattr(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` that imports ``names[name]`` (name -> defining module) on
    first use, so importing the package itself stays light."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
