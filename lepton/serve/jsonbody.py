"""Reading a JSON request body: orjson, or simdjson's faster reading that always agrees.

``parse_json`` (orjson) is the reference: the binary-extension path reads its JSON header with
it, and the /v1 route its body. ``parse_infer_json`` reads a JSON infer request with simdjson
and leaves each input's flat ``data`` unconverted for the tensor decoder, and it reads every
body exactly as ``parse_json`` does, so that a request decodes alike with and without
``Inference-Header-Content-Length``; the tests hold the two readings against each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import simdjson

from lepton.serve.errors import ProtocolError

_BOM = b"\xef\xbb\xbf"  # simdjson skips it, orjson refuses it: refused on both paths


def parse_json(body: bytes | memoryview) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("The request body is not valid JSON",
                            received=f"{str(exc)[:120]}", fix="send a JSON object") from None


def parse_infer_json(body: bytes) -> Any:
    """A JSON infer request as Python objects, except each input's flat ``data``, left as a
    simdjson Array so that its numbers are copied straight into a NumPy buffer: one Python
    float per number (orjson, then ``np.asarray``) was half the cost of a JSON request on the
    event loop.

    Where simdjson's lazy reading could differ from orjson's, orjson reads the body: a parse
    error (orjson's message is the one sent), an integer beyond 64 bits (a float, as orjson
    reads it), a byte-order mark, a NUL in a key (simdjson looks such a key up cut at the NUL)
    or a key given twice (simdjson finds the first, orjson keeps the last). ``data`` holding
    nested arrays becomes a list, since flattening a simdjson Array accepts ragged ones.
    """
    if body.startswith(_BOM):
        return parse_json(body)
    try:
        doc = simdjson.Parser().parse(body)  # a parser per request: ~50 ns, and thread-safe
        if not isinstance(doc, simdjson.Object):
            return _python(doc)
        header = _fields(doc, "inputs")
        inputs = header.get("inputs")
        if isinstance(inputs, simdjson.Array):
            header["inputs"] = [_fields(raw, "data") if isinstance(raw, simdjson.Object)
                                else _python(raw) for raw in inputs]
            if not _flat(body, header):
                for raw in header["inputs"]:
                    if isinstance(raw, dict) and isinstance(raw.get("data"), simdjson.Array):
                        raw["data"] = raw["data"].as_list()
    except (ValueError, RuntimeError, _Irregular):  # RuntimeError: integers beyond 64 bits,
        return parse_json(body)  # or nesting deeper than Python's recursion limit
    return header


class _Irregular(Exception):
    """A body that simdjson's lazy reading would not read as orjson does."""


def _fields(obj: simdjson.Object, lazy: str) -> dict[str, Any]:
    """An object's fields as Python objects, but the ``lazy`` one as simdjson left it."""
    out = {}
    for key in obj:
        if "\0" in key:
            raise _Irregular  # simdjson would look it up cut at the NUL
        value = obj[key]
        out[key] = value if key == lazy and isinstance(value, simdjson.Array) \
            else _python(value)
    if len(out) != len(obj):
        raise _Irregular  # a key given twice
    return out


def _flat(body: bytes, header: dict[str, Any]) -> bool:
    """No simdjson Array left in the header holds an array: the body has no '[' beyond the
    arrays the header accounts for (a '[' in a string makes this False: only slower)."""
    known = _arrays(header.values())
    at = body.find(b"[")
    while at >= 0 and known >= 0:
        known -= 1
        at = body.find(b"[", at + 1)
    return known == 0


def _arrays(values: Iterable[Any]) -> int:
    """How many JSON arrays these values hold (a simdjson Array counts one, unopened).
    Nesting past Python's recursion limit raises RecursionError, a RuntimeError: orjson
    then reads the body."""
    count = 0
    for value in values:
        kind = type(value)  # exact types: the values come from simdjson's conversion
        if kind is list:
            count += 1 + _arrays(value)
        elif kind is dict:
            count += _arrays(value.values())
        elif kind is simdjson.Array:
            count += 1
    return count


def _python(value: Any) -> Any:
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value
