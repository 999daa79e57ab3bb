"""``lepton serve``: Open Inference Protocol V2 serving with adaptive batching.

Modules, one job each, in the order a request meets them: ``http`` (uvicorn's protocol, one
write per response), ``app`` (the ASGI router, the lifecycle and the one wrapper around every
hot route), ``asgi`` (reading bodies, sending answers), ``auth``, ``handlers`` (each hot
route's decode and encode), ``models`` (the model table: loading, warm-up, lookup),
``batcher`` (adaptive batching; the model runs in the artifact's runtime from
``lepton.artifact.runtimes``, chosen by its manifest), ``protocol`` (OIP V2 JSON and
binary tensors), ``records`` (the /v1 raw-record codec), ``errors`` (exception -> HTTP status),
``predlog`` (prediction log), ``metrics``, ``routes`` (FastAPI routes, OpenAPI, offline
``/docs``). Around them: ``options`` (settings, checked; the CLI's defaults), ``server``
(uvicorn, workers, drain) and ``loadgen`` (load generator). Names below load on first use, so
``import lepton.serve`` stays light.
"""

from __future__ import annotations

from lepton import lazy_getattr

_LAZY = {
    "LeptonApp": "lepton.serve.app",
    "ModelSource": "lepton.serve.models",
    "ServeOptions": "lepton.serve.options",
    "Batcher": "lepton.serve.batcher",
    "BackgroundServer": "lepton.serve.server",
    "ServerConfig": "lepton.serve.options",
    "ModelRef": "lepton.serve.options",
    "resolve_models": "lepton.serve.server",
    "build_app": "lepton.serve.server",
    "serve": "lepton.serve.server",
}


__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
