"""A small client for ``lepton serve``: predictions, raw tensors, feedback.

    client = lepton.Client("http://127.0.0.1:8000", token=None)
    preds = client.predict("mnist", images)        # [{"id", "label", "probabilities"}, ...]
    client.feedback(preds[0]["id"], label="7")
    out = client.infer("mnist", images)            # V2 binary tensors -> {"output": array}

Standard library only (``http.client``), one keep-alive connection per thread. Server errors
are raised as ``RequestError`` carrying the status and the server's message; no answer at all
(refused, timed out, unreachable) as ``ServerUnavailableError`` naming the URL.
"""

from __future__ import annotations

import json
import threading
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

from lepton.artifact.signature import DATATYPES, datatype_of
from lepton.errors import ConfigError, LeptonError, ServerUnavailableError


class RequestError(LeptonError):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        Exception.__init__(self, f"HTTP {status}: {message}")
        self.http_status = status


class Client:
    """Talks to a Lepton server (or any Open Inference Protocol V2 server for ``infer``)."""

    def __init__(self, url: str = "http://127.0.0.1:8000", token: str | None = None,
                 timeout: float = 60.0, ca_bundle: str | None = None) -> None:
        """``ca_bundle``: a PEM file of the CA certificates an ``https`` server's certificate
        is checked against (default: the system's); the certificate is always checked."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("Invalid server URL", expected="http://host:port",
                              received=url)
        self.url = f"{parts.scheme}://{parts.netloc}"
        self._https = parts.scheme == "https"
        self._ssl: Any = None
        if self._https:
            import ssl

            self._ssl = ssl.create_default_context(cafile=ca_bundle)
        self._host = parts.hostname
        self._port = parts.port
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self.last_ids: list[str] = []
        self._local = threading.local()

    # -- public API ----------------------------------------------------------------------
    def predict(self, model: str, inputs: Any) -> list[dict[str, Any]]:
        """Raw records or arrays in (one per row); one result per row with its ``id``."""
        if hasattr(inputs, "detach"):
            inputs = inputs.detach().cpu().numpy()
        if isinstance(inputs, np.ndarray):
            inputs = inputs.tolist()
        elif hasattr(inputs, "to_dict") and hasattr(inputs, "columns"):
            inputs = inputs.to_dict(orient="records")
        body = json.dumps({"inputs": list(inputs)}).encode()
        doc = self._json("POST", f"/v1/models/{_name(model)}/predict", body)
        return doc["predictions"]

    def infer(self, model: str, inputs: Any, *, version: str | None = None,
              request_id: str | None = None) -> dict[str, np.ndarray]:
        """Arrays in (a dict by input name, or one array for single-input models) and the
        output arrays out, as binary tensors (Open Inference Protocol V2). The prediction
        ids are in ``client.last_ids``."""
        if not isinstance(inputs, dict):
            meta = self.metadata(model)
            inputs = {meta["inputs"][0]["name"]: inputs}
        header: dict[str, Any] = {"inputs": [], "parameters": {"binary_data_output": True}}
        blobs = []
        for name, value in inputs.items():
            array = np.ascontiguousarray(value)
            blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            header["inputs"].append({"name": name, "shape": list(array.shape),
                                     "datatype": datatype_of(array),
                                     "parameters": {"binary_data_size": len(blob)}})
            blobs.append(blob)
        if request_id is not None:
            header["id"] = request_id
        head = json.dumps(header).encode()
        path = f"/v2/models/{_name(model)}"
        if version is not None:
            path += f"/versions/{_name(version)}"
        status, headers, body = self._request(
            "POST", path + "/infer", b"".join([head, *blobs]),
            {"Inference-Header-Content-Length": str(len(head)),
             "Content-Type": "application/octet-stream"})
        if status != 200:
            raise RequestError(status, _message(body))
        size = int(headers.get("inference-header-content-length", len(body)))
        doc = json.loads(body[:size])
        self.last_ids = doc.get("parameters", {}).get("prediction_ids", [])
        out, offset = {}, size
        for entry in doc["outputs"]:
            dtype = DATATYPES[entry["datatype"]]
            if "parameters" in entry and "binary_data_size" in entry["parameters"]:
                n = entry["parameters"]["binary_data_size"]
                data = np.frombuffer(body[offset:offset + n], dtype=dtype.newbyteorder("<"))
                offset += n
            else:
                data = np.asarray(entry["data"], dtype=dtype)
            out[entry["name"]] = data.astype(dtype).reshape(entry["shape"])
        return out

    def feedback(self, prediction_id: str, *, label: Any = None, rating: float | None = None,
                 key: str | None = None) -> dict[str, Any]:
        """Attach a true label and/or a rating to a prediction id (idempotent on ``key``)."""
        doc: dict[str, Any] = {"id": prediction_id, "label": label, "rating": rating}
        if key is not None:
            doc["key"] = key
        return self._json("POST", "/v1/feedback", json.dumps(doc).encode())

    def ready(self) -> bool:
        try:
            return self._request("GET", "/v2/health/ready")[0] == 200
        except OSError:
            return False

    def traffic(self) -> dict[str, Any]:
        """The server's live traffic routing by model (experiments, arms, figures)."""
        return self._json("GET", "/v1/traffic")

    def models(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/models")["models"]

    def metadata(self, model: str) -> dict[str, Any]:
        return self._json("GET", f"/v2/models/{_name(model)}")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------
    def _json(self, method: str, path: str, body: bytes | None = None) -> Any:
        status, _, data = self._request(method, path, body, {"Content-Type": "application/json"})
        if status != 200:
            raise RequestError(status, _message(data))
        return json.loads(data)

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        all_headers = {**self._headers, **(headers or {})}
        try:
            try:
                return self._send(method, path, body, all_headers)
            except (HTTPException, ConnectionError):
                self.close()  # the server closed a kept-alive connection: one fresh try
                return self._send(method, path, body, all_headers)
        except (HTTPException, OSError) as exc:
            self.close()
            raise ServerUnavailableError(self.url, f"{type(exc).__name__}: {exc}") from exc

    def _send(self, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        conn = self._conn()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def _conn(self) -> HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = (
                HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                context=self._ssl) if self._https
                else HTTPConnection(self._host, self._port, timeout=self.timeout))
        return conn


def _name(value: str) -> str:
    return quote(str(value), safe="")


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")
