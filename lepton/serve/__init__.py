"""``lepton serve``: Open Inference Protocol V2 serving with adaptive batching.

Modules, one job each: ``batcher`` (adaptive batching), ``protocol`` (OIP V2 JSON and binary
tensors), ``records`` (the /v1 raw-record route), ``runner`` (model execution), ``app`` (the
ASGI hot path), ``routes`` (FastAPI routes and OpenAPI), ``auth``, ``metrics``, ``predlog``
(prediction log), ``server`` (uvicorn, workers, drain), ``loadgen`` (load generator).
Names below load on first use, so ``import lepton.serve`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "LeptonApp": "lepton.serve.app",
    "ModelSource": "lepton.serve.app",
    "ServeOptions": "lepton.serve.app",
    "Batcher": "lepton.serve.batcher",
    "Runner": "lepton.serve.runner",
    "BackgroundServer": "lepton.serve.server",
    "ServerConfig": "lepton.serve.server",
    "ModelRef": "lepton.serve.server",
    "resolve_models": "lepton.serve.server",
    "build_app": "lepton.serve.server",
    "serve": "lepton.serve.server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lepton.serve' has no attribute {name!r}")


__all__ = list(_LAZY)
