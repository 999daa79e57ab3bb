"""A JSON infer body reads alike on both paths: simdjson (plain JSON body) and orjson (the
binary-extension path, ``Inference-Header-Content-Length`` equal to the body length); and the
JSON tensor decoder agrees with ``np.asarray(orjson.loads(...))`` on generated tensors."""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton.errors import LeptonError
from lepton.serve.protocol import DATATYPES, TensorSpec, decode_request
from tests.serve.conftest import mnist_images

HEADER = "Inference-Header-Content-Length"


def _mnist_corpus() -> dict[str, bytes]:
    """Bodies for the served CNN (input_1: FP32 [-1, 28, 28, 1]), valid and not."""
    images, _ = mnist_images(2)
    flat = images[:1].reshape(-1).astype(np.float64).tolist()
    numbers = ",".join(map(repr, flat)).encode()
    tensor = b'"name":"input_1","shape":[1,28,28,1],"datatype":"FP32"'

    def infer(data: bytes, extra: bytes = b"", top: bytes = b"") -> bytes:
        return b'{' + top + b'"inputs":[{' + tensor + extra + b',"data":' + data + b'}]}'

    ragged = orjson.dumps([flat[:2], [], *([v] for v in flat[2:783]), flat[783:]])
    return {
        "flat floats": infer(b"[" + numbers + b"]"),
        "nested floats": orjson.dumps({"inputs": [{
            "name": "input_1", "shape": [1, 28, 28, 1], "datatype": "FP32",
            "data": images[:1].tolist()}]}),
        "integers among floats": infer(b"[1,0,2," + numbers.split(b",", 3)[3] + b"]"),
        "NUL in an input key": infer(b"[" + numbers + b"]", b',"a\\u0000b":{}'),
        "NUL in the fuzzer's body": (b'{"inputs":[{"a\\u0000b":{}, "name":"x","shape":[1,4],'
                                     b'"datatype":"FP32","data":[1,2,3,4]}]}'),
        "NUL in a top-level key": infer(b"[" + numbers + b"]", top=b'"x\\u0000":[[1]],'),
        "data given twice": infer(b"[" + numbers + b"]" + b',"data":[1,2]'),  # the last counts
        "inputs given twice": infer(b"[" + numbers + b"]")[:-1] + b',"inputs":[]}',
        "integer beyond 64 bits": infer(b"[" + str(2**70).encode() + b","
                                        + numbers.split(b",", 1)[1] + b"]"),
        "2**64": infer(b"[" + str(2**64).encode() + b"," + numbers.split(b",", 1)[1] + b"]"),
        "1e400": infer(b"[1e400," + numbers.split(b",", 1)[1] + b"]"),
        "ragged, same count": infer(ragged),
        "number and arrays mixed": infer(b"[[" + numbers.split(b",", 1)[0] + b"],"
                                         + numbers.split(b",", 1)[1] + b"]"),
        "byte-order mark": b"\xef\xbb\xbf" + infer(b"[" + numbers + b"]"),
        "invalid UTF-8": infer(b"[" + numbers + b"]", b',"note":"\xff"'),
        "lone surrogate": infer(b"[" + numbers + b"]", b',"note":"\\ud800"'),
        "trailing garbage": infer(b"[" + numbers + b"]") + b"x",
        "deep nesting": b"[" * 5000 + b"]" * 5000,
        "empty body": b"",
        "NaN literal": infer(b"[NaN]"),
        "booleans": infer(b"[" + b",".join([b"true", b"false"] * 392) + b"]"),
        "nulls": infer(b"[" + b",".join([b"null"] * 784) + b"]"),
        "strings": infer(b"[" + b",".join([b'"1"'] * 784) + b"]"),
        "a bracket in a string": infer(b"[" + numbers + b"]", top=b'"id":"[[x]",'),
        "data an object": infer(b'{"a":[1]}'),
        "a top-level array": b"[1,2]",
        "one value short": infer(b"[" + numbers.rsplit(b",", 1)[0] + b"]"),
    }


CORPUS = _mnist_corpus()


@pytest.mark.parametrize("name", list(CORPUS))
def test_one_body_gets_one_answer_with_and_without_the_header_length(server, name):
    body = CORPUS[name]
    with server.client() as c:
        plain = c.post("/v2/models/mnist/infer", content=body)
        binary = c.post("/v2/models/mnist/infer", content=body,
                        headers={HEADER: str(len(body))})
    assert plain.status_code < 500, plain.text
    assert plain.status_code == binary.status_code, (plain.text, binary.text)
    if plain.status_code == 200:
        assert plain.json()["outputs"] == binary.json()["outputs"]
    else:
        assert plain.json()["error"] == binary.json()["error"]


def test_the_corpus_holds_what_the_fuzzers_found(server):
    """The schema fuzzer's NUL key and the 2**70 integer are answered (not 500, not 'not
    valid JSON'); ragged data is refused however it is sent."""
    with server.client() as c:
        answers = {name: c.post("/v2/models/mnist/infer", content=CORPUS[name])
                   for name in ("NUL in an input key", "NUL in the fuzzer's body",
                                "integer beyond 64 bits", "ragged, same count",
                                "data given twice")}
    assert answers["NUL in an input key"].status_code == 200
    fuzzer = answers["NUL in the fuzzer's body"]
    assert fuzzer.status_code == 400 and "Unknown input name" in fuzzer.json()["error"]
    assert answers["integer beyond 64 bits"].status_code == 200
    assert answers["ragged, same count"].status_code == 422
    assert answers["data given twice"].status_code == 422  # the last one wins, as in orjson


# -- the JSON tensor decoder against orjson + np.asarray ----------------------------------------

SCALARS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.integers(-300, 300),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**53 + 1]),
    st.booleans(),
    st.none(),
    st.text(max_size=2),
)


@st.composite
def tensors(draw: st.DrawFn) -> tuple[str, list[int], object]:
    """(datatype, shape, data): data flat, nested to the shape, ragged, or a wrong size."""
    datatype = draw(st.sampled_from(sorted(DATATYPES)))
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
    count = math.prod(shape)
    kind = draw(st.sampled_from(["flat", "flat", "nested", "ragged", "size"]))
    number = st.one_of(st.floats(-1e6, 1e6), st.integers(-100, 100)) \
        if draw(st.booleans()) else SCALARS
    if kind == "ragged":
        data = draw(st.lists(st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3),
                                          max_leaves=8), max_size=count + 2))
    else:
        size = count if kind != "size" else max(0, count + draw(st.sampled_from([-1, 1])))
        data = draw(st.lists(number, min_size=size, max_size=size))
        if kind == "nested" and size == count:
            data = np.asarray(data, dtype=object).reshape(shape).tolist()
    return datatype, shape, data


def _oracle(body: bytes, datatype: str, shape: list[int]) -> np.ndarray | None:
    data = orjson.loads(body)["inputs"][0]["data"]
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.asarray(data, dtype=DATATYPES[datatype])
    except (ValueError, TypeError, OverflowError):
        return None
    if array.size != math.prod(shape) or shape[0] == 0:
        return None
    return array.reshape(shape)


def _decode(body: bytes, header: str | None, spec: list[TensorSpec]) -> np.ndarray | str:
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return decode_request(body, header, spec).inputs["x"]
    except LeptonError as exc:
        return str(exc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensors())
def test_json_tensor_decoding_matches_orjson_and_numpy(tensor):
    datatype, shape, data = tensor
    body = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype,
                                   "data": data}]}).encode()
    spec = [TensorSpec("x", datatype, [-1, *shape[1:]])]
    expected = _oracle(body, datatype, shape)
    got = _decode(body, None, spec)
    if expected is None:
        assert isinstance(got, str), f"accepted what numpy refuses: {got!r}"
    else:
        assert not isinstance(got, str), got
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert got.tobytes() == expected.tobytes()
    other = _decode(body, str(len(body)), spec)  # the binary-extension path, no binary part
    assert type(other) is type(got)
    assert other == got if isinstance(got, str) else other.tobytes() == got.tobytes()
