"""What each hot route does around the batcher: decode the body before, encode the reply after.

The router (``app.py``) runs one wrapper for every hot route: it times the request, looks the
model up, awaits the batcher, logs the prediction, answers errors and counts the metrics. A
``Route`` only says how its body becomes a batcher item and how the outputs become a reply,
with two plain calls and no await of its own, so a new route costs the hot path nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from lepton.serve import records as v1
from lepton.serve.batcher import Batcher
from lepton.serve.models import Served
from lepton.serve.protocol import decode_request, encode_response

# (batcher, item to submit and log, rows, what encode needs of the request)
Decoded = tuple[Batcher, Any, int, Any]
# (body, JSON header length when the body carries binary tensors, outputs to log)
Encoded = tuple[bytes, int | None, Any]


@dataclass(frozen=True, slots=True)
class Route:
    """One hot route: its metrics label and its codec around the batcher."""

    name: str
    decode: Callable[[Served, bytes, bytes | None], Decoded]
    encode: Callable[[Served, str, str | None, Any, Any, list[str]], Encoded]


def _decode_infer(served: Served, body: bytes, header_length: bytes | None) -> Decoded:
    request = decode_request(body, None if header_length is None
                             else header_length.decode("latin-1"), served.runner.inputs)
    return served.batcher, request.inputs, request.rows, request


def _encode_infer(served: Served, name: str, version: str | None, request: Any,
                  outputs: Any, ids: list[str]) -> Encoded:
    payload, json_size = encode_response(name, version or served.runner.version, request,
                                         outputs, {"prediction_ids": ids})
    return payload, json_size, outputs


def _decode_predict(served: Served, body: bytes, _: bytes | None) -> Decoded:
    records = v1.decode_records(body)
    if served.records is not None:  # raw records, through the artifact's own preprocessing
        return served.records, records, len(records), None
    arrays = v1.records_to_arrays(records, served.runner.inputs)
    return served.batcher, arrays, len(records), None


def _encode_predict(served: Served, name: str, version: str | None, request: Any,
                    outputs: Any, ids: list[str]) -> Encoded:
    results = outputs if served.records is not None else v1.postprocess(
        outputs, served.runner.metadata)
    doc: dict[str, Any] = {"model_name": name, "predictions": [
        {"id": i, **r} for i, r in zip(ids, results, strict=True)]}
    if served.runner.version is not None:
        doc["model_version"] = served.runner.version
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), None, results


INFER = Route("infer", _decode_infer, _encode_infer)  # POST /v2/models/{name}[/versions/{v}]/infer
PREDICT = Route("predict", _decode_predict, _encode_predict)  # POST /v1/models/{name}/predict
