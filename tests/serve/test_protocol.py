"""The OIP V2 request decoder on its own: JSON numbers reach the model exactly as sent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lepton.errors import ShapeError
from lepton.serve.protocol import ProtocolError, TensorSpec, decode_request
from tests.serve.conftest import mnist_images

IMAGE = [TensorSpec("image", "FP32", [-1, 28, 28, 1])]


def body(data, shape, datatype="FP32", name="image") -> bytes:
    return json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": datatype,
                                   "data": data}]}).encode()


def test_flat_json_floats_decode_bit_for_bit_as_numpy_reads_them():
    images, _ = mnist_images(3)
    data = images.astype(np.float64).ravel().tolist()  # float64 digits, as tritonclient sends
    data[5] = 1  # a JSON integer among the floats
    request = decode_request(body(data, [3, 28, 28, 1]), None, IMAGE)
    expected = np.asarray(data, dtype=np.float32).reshape(3, 28, 28, 1)
    assert request.rows == 3 and request.inputs["image"].dtype == np.float32
    assert request.inputs["image"].tobytes() == expected.tobytes()


def test_nested_json_data_is_row_major_and_ragged_data_is_refused():
    images, _ = mnist_images(2)
    nested = decode_request(body(images.tolist(), [2, 28, 28, 1]), None, IMAGE)
    assert np.array_equal(nested.inputs["image"], images)
    ragged = images.tolist()
    ragged[1][27] = ragged[1][27][:-1] + [[0.5, 0.5]]  # same count, one row too long
    with pytest.raises(ShapeError, match="data that is not FP32"):
        decode_request(body(ragged, [2, 28, 28, 1]), None, IMAGE)


def test_fp32_overflow_and_null_become_inf_and_nan_for_the_runner_to_refuse():
    data = [0.0] * 782 + [1e39, None]
    request = decode_request(body(data, [1, 28, 28, 1]), None, IMAGE)
    image = request.inputs["image"].ravel()
    assert np.isinf(image[782]) and np.isnan(image[783]) and not image[:782].any()


@pytest.mark.parametrize(("data", "error", "message"), [
    (["a"] * 784, ShapeError, "data that is not FP32"),
    ([0.5] * 783, ShapeError, "does not match its shape"),
])
def test_bad_json_data_is_named(data, error, message):
    with pytest.raises(error, match=message):
        decode_request(body(data, [1, 28, 28, 1]), None, IMAGE)


@pytest.mark.parametrize("header", [None, "length"])
def test_integers_beyond_64_bits_read_as_the_nearest_float_on_both_paths(header):
    """As orjson reads them: an FP32 tensor takes them, an INT64 one refuses them."""
    raw = body([2**70, 2**64, -(2**63) - 1, 7], [1, 4], "FP32", "x")
    length = None if header is None else str(len(raw))
    got = decode_request(raw, length, [TensorSpec("x", "FP32", [-1, 4])]).inputs["x"]
    assert got.tolist() == [[float(np.float32(2**70)), float(np.float32(2**64)),
                             float(np.float32(-(2**63))), 7.0]]
    raw = body([2**70, 1], [1, 2], "INT64", "x")
    with pytest.raises(ShapeError, match="data that is not INT64"):
        decode_request(raw, None if header is None else str(len(raw)),
                       [TensorSpec("x", "INT64", [-1, 2])])


def test_a_nul_escape_in_a_key_is_read_as_the_key_it_is():
    """The schema fuzzer's body: simdjson looks such a key up cut at the NUL (a KeyError,
    then a 500); it is now read whole, like any other unknown key."""
    raw = (b'{"inputs":[{"a\\u0000b":{}, "name":"x","shape":[1,4],"datatype":"FP32",'
           b'"data":[1,2,3,4]}], "c\\u0000":[1]}')
    request = decode_request(raw, None, [TensorSpec("x", "FP32", [-1, 4])])
    assert request.inputs["x"].tolist() == [[1.0, 2.0, 3.0, 4.0]]
    with pytest.raises(ProtocolError, match="Unknown input name"):
        decode_request(raw, None, [TensorSpec("y", "FP32", [-1, 4])])


def test_ragged_data_is_refused_even_when_its_count_matches():
    for data in ([[1.0, 2.0], [], [3.0], [4.0]], [1.0, [2.0], 3.0, 4.0]):
        with pytest.raises(ShapeError, match="data that is not FP32"):
            decode_request(body(data, [1, 4], name="x"), None,
                           [TensorSpec("x", "FP32", [-1, 4])])


def test_integer_tensors_keep_their_range_check():
    spec = [TensorSpec("ids", "INT8", [-1, 2])]
    assert decode_request(body([1, -3], [1, 2], "INT8", "ids"), None, spec).inputs[
        "ids"].tolist() == [[1, -3]]
    with pytest.raises(ShapeError, match="data that is not INT8"):
        decode_request(body([1, 300], [1, 2], "INT8", "ids"), None, spec)


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'{"inputs": 3}', b'{"inputs": [3]}', b""])
def test_malformed_json_requests_are_protocol_errors(raw):
    with pytest.raises(ProtocolError):
        decode_request(raw, None, IMAGE)
