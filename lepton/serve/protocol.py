"""Open Inference Protocol V2 (KServe V2 / Triton) request and response codec.

JSON tensors (``data`` flat or nested, row-major) and the binary tensor data extension: a body
whose first ``Inference-Header-Content-Length`` bytes are the JSON header, followed by the raw
little-endian tensor bytes of each input that declares ``parameters.binary_data_size``, in
input order. Outputs are returned as binary when the request asks for it (per output
``parameters.binary_data`` or ``parameters.binary_data_output`` for all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import simdjson

from lepton.artifact.signature import DATATYPES, TensorSpec, datatype_of
from lepton.errors import ShapeError
from lepton.serve.errors import ProtocolError
from lepton.serve.jsonbody import parse_infer_json, parse_json

__all__ = ["DATATYPES", "InferRequest", "ProtocolError", "TensorSpec",
           "datatype_of", "decode_request", "encode_response"]

MAX_RANK = 8


@dataclass(slots=True)
class InferRequest:
    """A decoded request: named input arrays plus what the client wants back."""

    id: str | None
    inputs: dict[str, np.ndarray]
    binary_outputs: set[str] = field(default_factory=set)
    all_binary: bool = False
    requested: list[str] | None = None
    rows: int = 1


def decode_request(body: bytes, header_length: str | None,
                   inputs: list[TensorSpec]) -> InferRequest:
    """Decode an OIP V2 infer request and check it against the model's input signature."""
    if header_length is not None:
        try:
            json_size = int(header_length)
        except ValueError:
            json_size = -1
        if not 0 <= json_size <= len(body):
            raise ProtocolError("Invalid Inference-Header-Content-Length",
                                expected=f"an integer between 0 and the body size {len(body)}",
                                received=header_length[:40])
        view = memoryview(body)
        header = parse_json(view[:json_size])
        binary = view[json_size:]
    else:
        header = parse_infer_json(body)
        binary = memoryview(b"")
    if not isinstance(header, dict):
        raise ProtocolError("The request must be a JSON object", received=type(header).__name__)
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("The request needs a non-empty 'inputs' list",
                            received=_short(raw_inputs))
    specs = {s.name: s for s in inputs}
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for raw in raw_inputs:
        array, offset = _decode_tensor(raw, binary, offset, specs)
        arrays[raw["name"]] = array
    if offset != len(binary):
        raise ProtocolError("The binary part of the body does not match the inputs",
                            expected=f"{offset} bytes after the JSON header",
                            received=f"{len(binary)} bytes")
    missing = [name for name in specs if name not in arrays]
    if missing:
        raise ProtocolError("Missing model input(s)", expected=sorted(specs),
                            received=sorted(arrays))
    rows = {int(a.shape[0]) for a in arrays.values()}
    if 0 in rows:
        raise ShapeError("The batch is empty", expected="at least one row", received="0 rows")
    if len(rows) != 1:
        raise ShapeError("All inputs must have the same batch size (first dimension)",
                         received=sorted(rows))
    request = InferRequest(id=_request_id(header), inputs=arrays, rows=rows.pop())
    params = header.get("parameters")
    if isinstance(params, dict) and params.get("binary_data_output") is True:
        request.all_binary = True
    outs = header.get("outputs")
    if outs is not None:
        if not isinstance(outs, list):
            raise ProtocolError("'outputs' must be a list", received=_short(outs))
        request.requested = []
        for out in outs:
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise ProtocolError("Each requested output needs a 'name'", received=_short(out))
            request.requested.append(out["name"])
            out_params = out.get("parameters")
            if isinstance(out_params, dict) and out_params.get("binary_data") is True:
                request.binary_outputs.add(out["name"])
    return request


def _request_id(header: dict) -> str | None:
    rid = header.get("id")
    if rid is None:
        return None
    if not isinstance(rid, str) or len(rid) > 256:
        raise ProtocolError("The request 'id' must be a string of at most 256 characters",
                            received=_short(rid))
    return rid


def _decode_tensor(raw: Any, binary: memoryview, offset: int,
                   specs: dict[str, TensorSpec]) -> tuple[np.ndarray, int]:
    if not isinstance(raw, dict):
        raise ProtocolError("Each input must be an object with name, shape, datatype, data",
                            received=_short(raw))
    name = raw.get("name")
    if not isinstance(name, str) or name not in specs:
        raise ProtocolError("Unknown input name", expected=sorted(specs), received=_short(name))
    spec = specs[name]
    shape = raw.get("shape")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= MAX_RANK
            or not all(type(d) is int and 0 <= d < 2**31 for d in shape)):
        raise ProtocolError(f"Input '{name}' needs a 'shape': a list of 1 to {MAX_RANK} "
                            "non-negative integers", received=_short(shape))
    datatype = raw.get("datatype")
    if datatype != spec.datatype:
        raise ShapeError(f"Input '{name}' has the wrong datatype", expected=spec.datatype,
                         received=_short(datatype))
    _check_shape(name, shape, spec.shape)
    dtype = DATATYPES[datatype]
    count = math.prod(shape)
    params = raw.get("parameters")
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if type(size) is not int or size != count * dtype.itemsize:
            raise ProtocolError(f"Input '{name}' declares a wrong binary_data_size",
                                expected=count * dtype.itemsize, received=_short(size))
        if offset + size > len(binary):
            raise ProtocolError(f"Input '{name}' is cut short", expected=f"{size} bytes",
                                received=f"{len(binary) - offset} bytes")
        # a writable copy, so that torch can take it without another copy on the model thread
        array = np.frombuffer(bytearray(binary[offset:offset + size]),
                              dtype=dtype.newbyteorder("<"))
        return array.astype(dtype, copy=False).reshape(shape), offset + size
    data = raw.get("data")
    if isinstance(data, simdjson.Array):
        data = _numbers(data, dtype, count)
    if not isinstance(data, (list, np.ndarray)):
        raise ProtocolError(f"Input '{name}' needs 'data' (a list) or binary data",
                            received=_short(data))
    try:
        with np.errstate(over="ignore"):  # 1e39 as FP32 is inf: the runner refuses it
            array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise ShapeError(f"Input '{name}' has data that is not {datatype}",
                         expected=f"a (nested) list of {count} numbers",
                         received=_short(data)) from None
    if array.size != count:
        raise ShapeError(f"Input '{name}' has data that does not match its shape",
                         expected=f"{count} elements for shape {shape}",
                         received=f"{array.size} elements")
    return array.reshape(shape), offset  # NaN/inf (1e39 as FP32): refused by the runner


def _numbers(data: simdjson.Array, dtype: np.dtype, count: int) -> np.ndarray | list:
    """Float data as float64 in one copy (``parse_infer_json`` leaves only flat arrays as
    simdjson Arrays); anything else (integers, whose range np.asarray checks; booleans,
    nulls, strings) as a Python list."""
    if dtype.kind == "f" and len(data) == count:
        try:
            return np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
        except (TypeError, ValueError):  # not all numbers
            pass
    return data.as_list()


def _check_shape(name: str, shape: list[int], expected: list[int]) -> None:
    ok = len(shape) == len(expected) and all(
        e in (-1, d) for d, e in zip(shape, expected, strict=True))
    if not ok:
        raise ShapeError(f"Input '{name}' has the wrong shape", expected=expected,
                         received=shape, fix="the first dimension is the batch size")


def encode_response(model: str, version: str | None, request: InferRequest,
                    outputs: dict[str, np.ndarray],
                    parameters: dict[str, Any] | None = None) -> tuple[bytes, int | None]:
    """Encode the response; returns (body, json_header_length or None when all JSON)."""
    names = request.requested if request.requested is not None else list(outputs)
    entries = []
    blobs = []
    for name in names:
        if name not in outputs:
            raise ProtocolError("Unknown output name", expected=sorted(outputs), received=name)
        array = outputs[name]
        entry: dict[str, Any] = {"name": name, "datatype": datatype_of(array),
                                 "shape": list(array.shape)}
        if request.all_binary or name in request.binary_outputs:
            blob = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            flat = array.reshape(-1)
            entry["data"] = flat.astype(np.float32) if flat.dtype == np.float16 else flat
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model, "outputs": entries}
    if version is not None:
        doc["model_version"] = version
    if request.id is not None:
        doc["id"] = request.id
    if parameters:
        doc["parameters"] = parameters
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
