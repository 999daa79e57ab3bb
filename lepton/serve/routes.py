"""The FastAPI routes (everything but the hot paths), the OpenAPI document and ``/docs``.

The hot routes are answered by the raw ASGI layer in ``app.py``; their request and response
schemas are added to the OpenAPI document here so that ``/docs`` and schema fuzzers see the
whole API. Every error uses one shape: ``{"error": "<what, expected, received, fix>"}``.
``/docs`` (Swagger UI) and ``/redoc`` load their scripts, styles and favicon from this server
(the files ship in the ``fastapi-offline`` package), never from a CDN: the docs work offline.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lepton.errors import LeptonError
from lepton.serve.auth import BearerAuth
from lepton.serve.errors import status_and_message
from lepton.serve.metrics import ServeMetrics
from lepton.serve.models import ModelSource, ModelTable
from lepton.serve.protocol import DATATYPES

ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


class Server(Protocol):
    """What the routes read of the app (``LeptonApp``), named here so routes need not import
    it."""

    table: ModelTable
    sources: list[ModelSource]
    auth: BearerAuth
    metrics: ServeMetrics
    store: Any
    predlog: Any

    @property
    def ready(self) -> bool: ...


class Feedback(BaseModel):
    """A true label or a rating for an earlier prediction id."""

    id: str = Field(min_length=1, max_length=128, description="the prediction id")
    label: Any = Field(default=None, description="the true label")
    rating: float | None = Field(default=None, allow_inf_nan=False)
    key: str | None = Field(default=None, min_length=1, max_length=256,
                            description="idempotency key; defaults to the prediction id")


def _json(doc: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(doc), status, headers=headers, media_type="application/json")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lepton")
    except PackageNotFoundError:
        return "0.1.0"


def build_api(server: Server) -> FastAPI:
    lepton_version = package_version()
    api = FastAPIOffline(title="Lepton model server", version=lepton_version,
                         description="Open Inference Protocol V2 with the binary tensor "
                                     "extension, plus raw-record predictions, feedback and "
                                     "metrics.",
                         static_url="/docs/assets")

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _json({"error": str(exc.detail)}, exc.status_code)

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                             for e in exc.errors()[:5])
        return _json({"error": f"Invalid request. Received: {problems[:500]}."}, 422)

    @api.exception_handler(LeptonError)
    async def lepton_error(_: Request, exc: LeptonError) -> Response:
        status, message, headers = status_and_message(exc)
        return _json({"error": message}, status, {k.decode(): v.decode() for k, v in headers})

    @api.exception_handler(Exception)
    async def failed(_: Request, exc: Exception) -> Response:
        status, message, headers = status_and_message(exc)
        return _json({"error": message}, status, {k.decode(): v.decode() for k, v in headers})

    @api.get("/v2", summary="Server metadata")
    def server_metadata() -> Response:
        return _json({"name": "lepton", "version": lepton_version,
                      "extensions": ["binary_tensor_data"]})

    @api.get("/v2/models/{name}", summary="Model metadata (default version)")
    def model_metadata(name: str) -> Response:
        return Response(server.table.lookup(name, None).meta, media_type="application/json")

    @api.get("/v2/models/{name}/versions/{version}", summary="Model metadata (one version)")
    def version_metadata(name: str, version: str) -> Response:
        return Response(server.table.lookup(name, version).meta, media_type="application/json")

    @api.get("/v2/models/{name}/ready", summary="Model readiness")
    def model_ready(name: str) -> Response:
        server.table.lookup(name, None)
        return _json({"name": name, "ready": True})

    @api.get("/v2/models/{name}/versions/{version}/ready", summary="Model version readiness")
    def version_ready(name: str, version: str) -> Response:
        server.table.lookup(name, version)
        return _json({"name": name, "version": version, "ready": True})

    @api.get("/v1/models", summary="The served models and versions")
    def list_models() -> Response:
        return _json({"models": [
            {"name": name, "versions": [v for v in versions if v is not None],
             "ready": server.ready}
            for name, versions in server.table.models.items()]})

    @api.post("/v1/feedback", summary="Attach a true label or a rating to a prediction id")
    def feedback(body: Feedback) -> Response:
        if server.store is None:
            return _json({"error": "This server keeps no store, so it cannot record feedback. "
                                   "Fix: start it without --no-log"}, 503)
        if server.predlog is not None:
            server.predlog.flush()  # the prediction may still be in the write buffer
        from lepton.store._monitor import add_feedback_counted

        record = add_feedback_counted(server.store, body.id, label=body.label,
                                      rating=body.rating, key=body.key)
        if record is None:  # counted, for lepton monitor's report
            return _json({"error": f"No such prediction: {body.id[:128]!r} (counted as "
                                   "feedback for an unknown id). Fix: send the id a "
                                   "prediction returned"}, 404)
        return _json({"id": body.id, "key": record["key"], "created": record["created"],
                      "time": record.get("time")})

    @api.get("/metrics", summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(server.metrics.render(), media_type=server.metrics.content_type)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(title=api.title, version=api.version,
                                 description=api.description, routes=api.routes)
            schema["paths"].update(_hot_paths())
            examples = _examples(server)
            for item in schema["paths"].values():
                for op in item.values():
                    for param in op.get("parameters", []):
                        if param["name"] in examples:
                            param["schema"]["example"] = examples[param["name"]]
                    op.setdefault("responses", {}).update(
                        {code: {"description": text, "content": {
                            "application/json": {"schema": ERROR}}}
                         for code, text in (("401", "Missing or wrong token"),
                                            ("404", "Unknown model or version"),
                                            ("503", "Not ready or overloaded"))})
            if server.auth.enabled:
                schema.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer"}}
                schema["security"] = [{"bearer": []}]
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api


def _examples(server: Server) -> dict[str, str]:
    """Path-parameter examples naming a served model, so docs and fuzzers reach real ones."""
    for source in server.sources:
        return {"name": source.name, "version": source.version or "1"}
    return {}


def _hot_paths() -> dict[str, Any]:
    """OpenAPI for the routes the raw layer answers."""
    tensor = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": sorted(DATATYPES)},
        "parameters": {"type": "object"},
        "data": {"type": "array"}}}
    infer_request = {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": tensor},
        "outputs": {"type": "array", "items": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}}}}}}
    infer_response = {"type": "object", "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"},
        "id": {"type": "string"}, "parameters": {"type": "object"},
        "outputs": {"type": "array", "items": tensor}}}
    errors = {code: {"description": text, "content": {"application/json": {"schema": ERROR}}}
              for code, text in (("400", "Not a valid OIP request"),
                                 ("413", "Body over the size limit"),
                                 ("422", "Wrong shape, datatype or values"),
                                 ("504", "Timed out"))}

    def infer_op(params: list[str], summary: str) -> dict[str, Any]:
        return {"post": {
            "summary": summary,
            "parameters": [{"name": p, "in": "path", "required": True,
                            "schema": {"type": "string"}} for p in params],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": infer_request}}},
            "responses": {"200": {"description": "Outputs", "content": {
                "application/json": {"schema": infer_response}}}, **errors}}}

    predict_request = {"type": "object", "required": ["inputs"], "properties": {
        "inputs": {"type": "array", "items": {}, "description": "one record or array per row"}}}
    predict_response = {"type": "object", "properties": {
        "model_name": {"type": "string"}, "predictions": {"type": "array", "items": {
            "type": "object", "properties": {"id": {"type": "string"}}}}}}
    predict = infer_op(["name"], "Predict raw records (with the saved pre/post-processing)")
    predict["post"]["requestBody"]["content"]["application/json"]["schema"] = predict_request
    predict["post"]["responses"]["200"]["content"]["application/json"]["schema"] = \
        predict_response
    return {
        "/v2/health/live": {"get": {"summary": "Liveness (no token needed)", "security": [],
                                    "responses": {"200": {"description": "Alive"}}}},
        "/v2/health/ready": {"get": {"summary": "Readiness (no token needed)", "security": [],
                                     "responses": {"200": {"description": "Ready"},
                                                   "503": {"description": "Not ready"}}}},
        "/v2/models/{name}/infer": infer_op(["name"], "Inference (Open Inference Protocol V2)"),
        "/v2/models/{name}/versions/{version}/infer": infer_op(
            ["name", "version"], "Inference on one version (Open Inference Protocol V2)"),
        "/v1/models/{name}/predict": predict,
    }
