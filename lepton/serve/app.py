"""The ASGI application: a raw router for the hot routes, FastAPI for the rest, the lifecycle.

Hot routes (health probes, ``POST /v2/models/{name}[/versions/{v}]/infer`` and
``POST /v1/models/{name}/predict``) are answered here with orjson and no framework: routing by
``str.split``, the body read once with its size limit, and one wrapper (``_handle``) around the
batcher for every hot route (see ``handlers``). Everything else (metadata, feedback, metrics,
the OpenAPI docs) goes to a FastAPI app, after the same token check and body limit. Models
load in a background thread after start-up, so liveness answers while loading and readiness
turns 200 only once every model is loaded and warmed up. Workers sharing a port instead load
before they listen, so that no connection lands on a worker still loading.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lepton.errors import ConfigError
from lepton.serve import upkeep
from lepton.serve.asgi import (
    OCTETS,
    Message,
    Receive,
    Send,
    read_body,
    replay,
    send_body,
    send_error,
    send_exception,
)
from lepton.serve.auth import BearerAuth
from lepton.serve.errors import HTTPError
from lepton.serve.handlers import INFER, PREDICT, Route
from lepton.serve.metrics import ServeMetrics
from lepton.serve.models import ModelSource, ModelTable
from lepton.serve.options import ServeOptions
from lepton.serve.resources import ResourceCollector
from lepton.serve.routes import build_api
from lepton.serve.traffic import REQUEST_ID_HEADER, UNIT_HEADER, Traffic

__all__ = ["LeptonApp", "ModelSource", "ServeOptions"]

log = logging.getLogger("lepton.serve")
NO_LABELS = ("", "")
UNAUTHORIZED = ("Missing or wrong bearer token. Fix: send the header "
                "'Authorization: Bearer <token>'")


class LeptonApp:
    """The ASGI application serving one or more models."""

    def __init__(self, sources: list[ModelSource], options: ServeOptions | None = None, *,
                 store_factory: Callable[[], Any] | None = None) -> None:
        if not sources:
            raise ConfigError("Nothing to serve", expected="at least one model", received="none")
        self.options = options or ServeOptions()
        self.sources = sources
        self.store_factory = store_factory
        self.store: Any = None
        self.predlog: Any = None
        self.background: list[Any] = []  # retention sweep, gauges, alias reload (upkeep)
        self.auth = BearerAuth(self.options.token)
        self.table = ModelTable(self.options)
        self._lookup = self.table.lookup  # bound once: one call per request, no attribute walk
        self.metrics = ServeMetrics(self.table.batchers)
        self.metrics.add_live(ResourceCollector(self))  # per-model resources and cost
        self.traffic = Traffic(self)  # experiments: routes by model, swapped by its poll
        self.draining = False
        self.on_load_error: Callable[[], None] | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="lepton-model")
        self._ids = itertools.count()
        self._id_prefix = secrets.token_hex(6)
        self.api = build_api(self)

    @property
    def ready(self) -> bool:
        """Every model loaded and warm, and the prediction log open."""
        return self.table.ready

    @property
    def load_error(self) -> str | None:
        return self.table.load_error

    # -- lifecycle -----------------------------------------------------------------------
    def load(self) -> None:
        """Load and warm every model, open the store; then mark the server ready."""
        try:
            self.table.load(self.sources, self.executor, self.metrics.batch_observer)
            if self.options.log_predictions or self.store_factory is not None:
                self.store = self._open_store()
                if self.options.log_predictions and self.store is not None:
                    self.predlog = upkeep.prediction_log(self)
            self.background = upkeep.start(self)
        except Exception as exc:  # noqa: BLE001 - reported by readiness and the log
            self.table.load_error = str(exc)
            log.error("lepton serve: could not load the models: %s", exc)
            if self.on_load_error is not None:
                self.on_load_error()
            return
        # Everything loaded so far lives as long as the server: keep it out of GC passes,
        # which otherwise rescan torch's objects and show up as latency spikes.
        gc.collect()
        gc.freeze()
        self.table.ready = True
        log.info("lepton serve: ready (%s)", ", ".join(self.table.models))

    def _open_store(self) -> Any:
        if self.store_factory is not None:
            return self.store_factory()
        from lepton.store import Store

        return Store.open()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if not self.options.load_before_listen:
                    threading.Thread(target=self.load, name="lepton-load", daemon=True).start()
                    await send({"type": "lifespan.startup.complete"})
                    continue
                await asyncio.get_running_loop().run_in_executor(None, self.load)
                if self.load_error is None:
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.startup.failed",
                                "message": "could not load the models"})
                    return
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def begin_drain(self) -> None:
        """Readiness turns 503 at once; in-flight requests still finish."""
        self.draining = True

    async def shutdown(self) -> None:
        self.draining = True
        for _, _, batcher in list(self.table.batchers()):
            await batcher.drain(self.options.drain_s)
        for _, _, batcher in list(self.table.batchers()):
            batcher.close()
        await asyncio.get_running_loop().run_in_executor(None, upkeep.stop, self.background)
        self.traffic.close()
        if self.predlog is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.predlog.close)
        if self.store is not None and self.store_factory is None:
            self.store.close()  # ours to close; a store handed in belongs to the caller
        self.executor.shutdown(wait=False)

    # -- ASGI entry ----------------------------------------------------------------------
    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Message, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path == "/v2/health/live":
            await send_body(send, 200, b'{"live":true}')
            return
        if path == "/v2/health/ready":
            ok = self.table.ready and not self.draining
            await send_body(send, 200 if ok else 503,
                            b'{"ready":true}' if ok else b'{"ready":false}')
            return
        authorization = length = header_length = unit = request_id = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key == b"content-length":
                length = value
            elif key == b"inference-header-content-length":
                header_length = value
            elif key == UNIT_HEADER:
                unit = value
            elif key == REQUEST_ID_HEADER:
                request_id = value
        if not self.auth.allows(path, authorization):
            await send_error(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
            return
        body = None
        if scope["method"] == "POST":
            try:
                body = await read_body(receive, length, self.options.max_body_bytes)
            except HTTPError as exc:  # 413
                self.metrics.observe_request("", "", "any", exc.http_status, None)
                await send_exception(send, exc)
                return
            if body is None:
                return
            parts = path.split("/")
            if len(parts) in (5, 7) and parts[1] == "v2" and parts[2] == "models" \
                    and parts[-1] == "infer" and (len(parts) == 5 or parts[4] == "versions"):
                await self._handle(send, INFER, parts[3], parts[5] if len(parts) == 7 else None,
                                   body, header_length, unit or request_id)
                return
            if len(parts) == 5 and parts[1] == "v1" and parts[2] == "models" \
                    and parts[4] == "predict":
                await self._handle(send, PREDICT, parts[3], None, body, header_length,
                                   unit or request_id)
                return
        elif path == "/v1/traffic":  # the live routing, for `lepton traffic show --url`
            await send_body(send, 200, self.traffic.describe())
            return
        await self.api(scope, receive if body is None else replay(body, receive), send)

    async def _handle(self, send: Send, route: Route, name: str, version: str | None,
                      body: bytes, header_length: bytes | None,
                      unit: bytes | None = None) -> None:
        """Every hot route: lookup (or the model's traffic experiment), decode, batch, encode,
        log, answer; errors as JSON."""
        started = time.perf_counter()
        code = 200
        labels = NO_LABELS
        router = self.traffic.routes.get(name) if version is None else None
        arm = None
        try:
            if router is None:
                served = self._lookup(name, version)
                headers = served.headers
            else:
                index, bucket = router.pick(unit)
                arm = router.arms[index]
                served = arm.served
                headers = served.headers + arm.headers
            labels = served.labels
            batcher, item, rows, request = route.decode(served, body, header_length)
            outputs = await batcher.submit(item)
            ids = self.new_ids(rows)
            payload, json_size, logged = route.encode(served, name, version, request, outputs,
                                                      ids)
            latency = time.perf_counter() - started
            if self.predlog is not None:
                self.predlog.add(ids, name, served.registry_version, item, logged,
                                 latency * 1000.0, assignment=None if arm is None or router
                                 is None else (router.experiment, arm.name, bucket))
            if json_size is None:
                await send_body(send, 200, payload, headers)
            else:
                await send_body(send, 200, payload, [*headers, (
                    b"inference-header-content-length", str(json_size).encode())], OCTETS)
            if router is not None:
                router.mirror(index, batcher is served.records, item, outputs)
        except Exception as exc:  # noqa: BLE001 - every error becomes a clean JSON body
            code = await send_exception(send, exc)
            latency = time.perf_counter() - started
            if self.predlog is not None and labels is not NO_LABELS:
                self.predlog.error(name, served.registry_version)  # the sketches' error rate
        if arm is not None:
            stats = arm.stats
            stats.requests += 1
            stats.errors += code >= 500
            stats.latencies.append(latency)
        self.metrics.observe_request(*labels, route.name, code, latency)

    def new_ids(self, rows: int) -> list[str]:
        """Ids that sort in the order they were made (fixed width), so the store's id index
        grows at one end instead of splitting pages all over."""
        prefix = self._id_prefix
        return [f"{prefix}-{next(self._ids):010x}" for _ in range(rows)]
