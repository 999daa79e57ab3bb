"""The HTTP application: a raw ASGI layer for the hot routes, FastAPI for the rest.

Hot routes (health probes, ``POST /v2/models/{name}[/versions/{v}]/infer`` and
``POST /v1/models/{name}/predict``) are answered here with orjson and no framework: routing by
``str.split``, the body read once with its size limit. Everything else (metadata, feedback,
metrics, the OpenAPI docs) goes to a FastAPI app, after the same token check and body limit.
Models load in a background thread after start-up, so liveness answers while loading and
readiness turns 200 only once every model is loaded and warmed up. Workers sharing a port
instead load before they listen, so that no connection lands on a worker still loading.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from lepton.errors import ConfigError, LeptonError
from lepton.serve import records as v1
from lepton.serve.auth import BearerAuth
from lepton.serve.batcher import Batcher, OverloadedError
from lepton.serve.metrics import ServeMetrics
from lepton.serve.protocol import decode_request, encode_response
from lepton.serve.runner import Runner

log = logging.getLogger("lepton.serve")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
JSON = b"application/json"


@dataclass
class ServeOptions:
    """Server settings; the defaults are the safe ones."""

    token: str | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    max_batch_size: int = 64
    max_latency_ms: float = 2.0
    max_queue: int = 1024
    timeout_s: float = 30.0
    drain_s: float = 30.0
    log_predictions: bool = True
    sample_inputs: bool = False
    threads: int = 1
    load_before_listen: bool = False  # workers sharing a port: only loaded ones accept


@dataclass
class Served:
    """One loaded model version and its batchers."""

    runner: Runner
    batcher: Batcher
    records: Batcher | None = None
    meta: bytes = b""
    registry_version: int | None = None


@dataclass
class ModelSource:
    """How to load one model: a name, an optional version and a loader returning a Runner."""

    name: str
    load: Callable[[], Runner]
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("model name", self.name)
        if self.version is not None:
            check_name("model version", self.version)


def check_name(what: str, value: str) -> None:
    """Names must be safe in URLs and paths (no '..', '/', NUL)."""
    if not NAME_RE.match(value):
        raise ConfigError(f"Invalid {what}", expected=NAME_RE.pattern, received=repr(value)[:80],
                          fix="use letters, digits, '.', '_' and '-' only")


class HTTPError(LeptonError):
    """An error with an explicit status, raised by the routing layer."""

    def __init__(self, status: int, message: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.http_status = status


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
        self.auth = BearerAuth(self.options.token)
        self.models: dict[str, dict[str | None, Served]] = {}
        self.defaults: dict[str, Served] = {}
        self.metrics = ServeMetrics(self._batchers)
        self.ready = False
        self.draining = False
        self.load_error: str | None = None
        self.on_load_error: Callable[[], None] | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="lepton-model")
        self._ids = itertools.count()
        self._id_prefix = secrets.token_hex(6)
        self.api = self._build_api()

    # -- lifecycle -----------------------------------------------------------------------
    def _batchers(self):
        """(model, version label, batcher) for metrics and shutdown."""
        for name, versions in list(self.models.items()):
            for served in versions.values():
                yield name, served.runner.version or "", served.batcher
                if served.records is not None:
                    yield name, served.runner.version or "", served.records

    def load(self) -> None:
        """Load and warm every model, open the store; then mark the server ready."""
        try:
            self.executor.submit(set_threads, self.options.threads).result()
            for source in self.sources:
                runner = source.load()
                runner.warmup(self.options.max_batch_size)
                self._add(source, runner)
            for name, versions in self.models.items():
                for served in versions.values():
                    served.meta = orjson.dumps(self._model_metadata(name, served.runner))
            if self.options.log_predictions or self.store_factory is not None:
                self.store = self._open_store()
                if self.options.log_predictions and self.store is not None:
                    from lepton.serve.predlog import PredictionLog

                    self.predlog = PredictionLog(self.store,
                                                 sample_inputs=self.options.sample_inputs,
                                                 on_drop=self.metrics.predlog_dropped.inc)
        except Exception as exc:  # noqa: BLE001 - reported by readiness and the log
            self.load_error = str(exc)
            log.error("lepton serve: could not load the models: %s", exc)
            if self.on_load_error is not None:
                self.on_load_error()
            return
        # Everything loaded so far lives as long as the server: keep it out of GC passes,
        # which otherwise rescan torch's objects and show up as latency spikes.
        gc.collect()
        gc.freeze()
        self.ready = True
        log.info("lepton serve: ready (%s)", ", ".join(self.models))

    def _open_store(self) -> Any:
        if self.store_factory is not None:
            return self.store_factory()
        from lepton.store import Store

        return Store.open()

    def _add(self, source: ModelSource, runner: Runner) -> None:
        opts = self.options
        observe = self.metrics.batch_observer(source.name, runner.version or "")
        batcher = Batcher(runner.run, max_batch_size=opts.max_batch_size,
                          max_latency_ms=opts.max_latency_ms, max_queue=opts.max_queue,
                          timeout_s=opts.timeout_s, size_of=_rows,
                          on_batch=observe,
                          executor=self.executor)
        served = Served(runner, batcher, registry_version=source.extra.get("registry_version"))
        predictor = _predictor(runner)
        if predictor is not None:
            served.records = Batcher(_records_fn(predictor), max_batch_size=opts.max_batch_size,
                                     max_latency_ms=opts.max_latency_ms,
                                     max_queue=opts.max_queue, timeout_s=opts.timeout_s,
                                     size_of=len, executor=self.executor,
                                     on_batch=observe)
        versions = self.models.setdefault(source.name, {})
        versions[source.version] = served
        self.defaults.setdefault(source.name, served)

    def _model_metadata(self, name: str, runner: Runner) -> dict[str, Any]:
        versions = [v for v in self.models.get(name, {}) if v is not None]
        return {"name": name, "versions": versions, "platform": runner.platform,
                "inputs": [s.as_json() for s in runner.inputs],
                "outputs": [s.as_json() for s in runner.outputs or []]}

    async def _lifespan(self, receive, send) -> None:
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
        for _, _, batcher in list(self._batchers()):
            await batcher.drain(self.options.drain_s)
        for _, _, batcher in list(self._batchers()):
            batcher.close()
        if self.predlog is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.predlog.close)
        if self.store is not None and self.store_factory is None:
            self.store.close()  # ours to close; a store handed in belongs to the caller
        self.executor.shutdown(wait=False)

    # -- ASGI entry ----------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope, receive, send) -> None:
        path: str = scope["path"]
        if path == "/v2/health/live":
            await _send(send, 200, b'{"live":true}')
            return
        if path == "/v2/health/ready":
            ok = self.ready and not self.draining
            await _send(send, 200 if ok else 503, b'{"ready":true}' if ok else b'{"ready":false}')
            return
        authorization = length = header_length = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key == b"content-length":
                length = value
            elif key == b"inference-header-content-length":
                header_length = value
        if not self.auth.allows(path, authorization):
            await _send_error(send, 401, "Missing or wrong bearer token. Fix: send the header "
                              "'Authorization: Bearer <token>'",
                              [(b"www-authenticate", b"Bearer")])
            return
        body = None
        if scope["method"] == "POST":
            body = await self._read_body(receive, send, length)
            if body is None:
                return
            parts = path.split("/")
            if len(parts) in (5, 7) and parts[1] == "v2" and parts[2] == "models" \
                    and parts[-1] == "infer" and (len(parts) == 5 or parts[4] == "versions"):
                version = parts[5] if len(parts) == 7 else None
                await self._infer(send, parts[3], version, body, header_length)
                return
            if len(parts) == 5 and parts[1] == "v1" and parts[2] == "models" \
                    and parts[4] == "predict":
                await self._predict(send, parts[3], body)
                return
        await self.api(scope, receive if body is None else _replay(body, receive), send)

    async def _read_body(self, receive, send, length: bytes | None) -> bytes | None:
        """The whole body, or None after answering 413 when it is over the limit."""
        limit = self.options.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._too_large(send, limit)
            return None
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(send, limit)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _too_large(self, send, limit: int) -> None:
        self.metrics.observe_request("", "", "any", 413, None)
        await _send_error(send, 413, f"Request body too large. Expected: at most {limit} bytes. "
                          "Fix: send smaller requests or raise --max-body-mb",
                          [(b"connection", b"close")])

    def _lookup(self, name: str, version: str | None) -> Served:
        versions = self.models.get(name)
        served = None
        if versions is not None:
            served = self.defaults[name] if version is None else versions.get(version)
        if served is None:
            if not self.ready and self.load_error is None:
                raise HTTPError(503, "The server is still loading its models",
                                fix="retry when /v2/health/ready answers 200")
            what = f"model '{name[:128]}'" + (f" version '{version[:64]}'" if version else "")
            raise HTTPError(404, f"Unknown {what}", expected=sorted(self.models),
                            fix="GET /v1/models lists the served models")
        if not self.ready:
            raise HTTPError(503, "The server is still loading its models",
                            fix="retry when /v2/health/ready answers 200")
        return served

    def new_ids(self, rows: int) -> list[str]:
        """Ids that sort in the order they were made (fixed width), so the store's id index
        grows at one end instead of splitting pages all over."""
        prefix = self._id_prefix
        return [f"{prefix}-{next(self._ids):010x}" for _ in range(rows)]

    async def _infer(self, send, name: str, version: str | None, body: bytes,
                     header_length: bytes | None) -> None:
        started = time.perf_counter()
        code = 200
        labels = ("", "")
        try:
            served = self._lookup(name, version)
            runner = served.runner
            labels = (name, runner.version or "")
            request = decode_request(body, None if header_length is None
                                     else header_length.decode("latin-1"), runner.inputs)
            outputs = await served.batcher.submit(request.inputs)
            ids = self.new_ids(request.rows)
            payload, json_size = encode_response(name, version or runner.version, request,
                                                 outputs, {"prediction_ids": ids})
            latency = time.perf_counter() - started
            if self.predlog is not None:
                self.predlog.add(ids, name, served.registry_version, request.inputs, outputs,
                                 latency * 1000.0)
            if json_size is None:
                await _send(send, 200, payload)
            else:
                await _send(send, 200, payload, [(b"inference-header-content-length",
                                                  str(json_size).encode())],
                            b"application/octet-stream")
        except Exception as exc:  # noqa: BLE001 - every error becomes a clean JSON body
            code = await _send_exception(send, exc)
            latency = time.perf_counter() - started
        self.metrics.observe_request(*labels, "infer", code, latency)

    async def _predict(self, send, name: str, body: bytes) -> None:
        started = time.perf_counter()
        code = 200
        labels = ("", "")
        try:
            served = self._lookup(name, None)
            labels = (name, served.runner.version or "")
            records = v1.decode_records(body)
            if served.records is not None:
                results = await served.records.submit(records)
                inputs_logged: Any = records
            else:
                arrays = v1.records_to_arrays(records, served.runner.inputs)
                outputs = await served.batcher.submit(arrays)
                results = v1.postprocess(outputs, served.runner.metadata)
                inputs_logged = arrays
            ids = self.new_ids(len(results))
            doc = {"model_name": name, "predictions": [{"id": i, **r}
                                                       for i, r in zip(ids, results, strict=True)]}
            if served.runner.version is not None:
                doc["model_version"] = served.runner.version
            latency = time.perf_counter() - started
            if self.predlog is not None:
                self.predlog.add(ids, name, served.registry_version, inputs_logged, results,
                                 latency * 1000.0)
            await _send(send, 200, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
        except Exception as exc:  # noqa: BLE001 - every error becomes a clean JSON body
            code = await _send_exception(send, exc)
            latency = time.perf_counter() - started
        self.metrics.observe_request(*labels, "predict", code, latency)

    def _build_api(self):
        from lepton.serve.routes import build_api

        return build_api(self)


def _rows(item: dict) -> int:
    return int(next(iter(item.values())).shape[0])


def set_threads(threads: int) -> None:
    """Torch threads for the model thread: one per worker by default, since two threads
    collapse when another process holds a core. Imported here, so torch loads off the
    event loop and liveness answers meanwhile."""
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # RuntimeError: already set in this process
        torch.set_num_interop_threads(1)


def _predictor(runner: Runner) -> Any:
    """The data pipeline's Predictor, for artifacts that saved their preprocessing."""
    if runner.path is None or not runner.metadata.get("preprocessing"):
        return None
    try:
        from lepton.data.predictor import Predictor
    except ImportError:
        return None
    return Predictor(runner.module, runner.metadata, runner.path)


def _records_fn(predictor: Any) -> Callable[[list[list[Any]]], list[Any]]:
    """Batch function over lists of raw records, through the artifact's own Predictor."""

    def run(items: list[list[Any]]) -> list[Any]:
        flat = [r for item in items for r in item]
        results = list(predictor.predict_records(flat))
        out, start = [], 0
        for item in items:
            out.append(results[start:start + len(item)])
            start += len(item)
        return out

    return run


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send(send, status: int, body: bytes, headers: list | None = None,
                content_type: bytes = JSON) -> None:
    base = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": base + headers if headers else base})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send, status: int, message: str, headers: list | None = None) -> None:
    await _send(send, status, orjson.dumps({"error": message}), headers)


def status_and_message(exc: BaseException) -> tuple[int, str, list]:
    """Map an exception to (status, client-safe message, extra headers)."""
    if isinstance(exc, OverloadedError):
        return 503, str(exc), [(b"retry-after", str(int(exc.retry_after_s)).encode())]
    if isinstance(exc, HTTPError) and exc.http_status == 503:
        return 503, str(exc), [(b"retry-after", b"1")]
    if isinstance(exc, LeptonError) and 400 <= exc.http_status < 500:
        return exc.http_status, str(exc), []
    if isinstance(exc, LeptonError) and exc.http_status in (503, 504):
        return exc.http_status, str(exc), []
    log.error("lepton serve: internal error", exc_info=exc)
    return 500, "Internal server error; the server log has the details", []


async def _send_exception(send, exc: BaseException) -> int:
    status, message, headers = status_and_message(exc)
    await _send_error(send, status, message, headers)
    return status


