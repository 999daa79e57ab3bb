"""The server over real HTTP: OIP V2 (JSON and binary, via tritonclient), v1, feedback, metrics."""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import orjson
import pytest
import torch
import tritonclient.http as triton
import xxhash
from tritonclient.utils import InferenceServerException

from tests.serve.conftest import CNN, DIGITS, mnist_images


def expected(images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return CNN().eval()(torch.from_numpy(images)).numpy()


def infer_body(images: np.ndarray, **extra) -> bytes:
    return orjson.dumps({"inputs": [{"name": "input_1", "shape": list(images.shape),
                                     "datatype": "FP32", "data": images.reshape(-1).tolist()}],
                         **extra})


def test_health_and_metadata(server):
    with server.client() as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 200
        assert c.get("/v2").json()["extensions"] == ["binary_tensor_data"]
        meta = c.get("/v2/models/mnist").json()
        assert meta["inputs"] == [{"name": "input_1", "datatype": "FP32",
                                   "shape": [-1, 28, 28, 1]}]
        assert meta["outputs"][0]["shape"] == [-1, 10]
        assert c.get("/v2/models/mnist/ready").status_code == 200
        assert c.get("/v2/models/mnist/versions/2/ready").status_code == 200
        assert c.get("/v2/models/nope/ready").status_code == 404
        assert c.get("/v1/models").json()["models"][0]["name"] == "mnist"


def test_json_infer_matches_the_model_on_real_images(server):
    images, _ = mnist_images(5)
    with server.client() as c:
        r = c.post("/v2/models/mnist/infer", content=infer_body(images, id="req-1"))
    assert r.status_code == 200
    doc = r.json()
    assert doc["id"] == "req-1" and doc["model_name"] == "mnist"
    out = doc["outputs"][0]
    assert out["name"] == "output_1" and out["shape"] == [5, 10] and out["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(out["data"]).reshape(5, 10), expected(images), atol=1e-5)
    ids = doc["parameters"]["prediction_ids"]
    assert len(ids) == 5 and len(set(ids)) == 5


def test_tritonclient_json_and_binary(server):
    images, _ = mnist_images(8)
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mnist")
    assert client.get_model_metadata("mnist")["inputs"][0]["name"] == "input_1"
    for binary in (False, True):
        inp = triton.InferInput("input_1", list(images.shape), "FP32")
        inp.set_data_from_numpy(images, binary_data=binary)
        out = triton.InferRequestedOutput("output_1", binary_data=binary)
        result = client.infer("mnist", [inp], outputs=[out], request_id=f"b{binary}")
        np.testing.assert_allclose(result.as_numpy("output_1"), expected(images), atol=1e-5)
        assert result.get_response()["id"] == f"b{binary}"
    result = client.infer("mnist", [inp], model_version="2")
    assert result.get_response()["model_version"] == "2"
    with pytest.raises(InferenceServerException, match="wrong shape"):
        bad = triton.InferInput("input_1", [1, 28, 28], "FP32")
        bad.set_data_from_numpy(images[:1, :, :, 0], binary_data=True)
        client.infer("mnist", [bad])
    client.close()


def test_many_concurrent_distinct_requests_each_get_their_own_answer(server):
    images, _ = mnist_images(300)
    want = expected(images)

    async def main():
        async with aiohttp.ClientSession(server.url) as session:
            async def one(i):
                async with session.post("/v2/models/mnist/infer",
                                        data=infer_body(images[i:i + 1])) as r:
                    assert r.status == 200
                    doc = orjson.loads(await r.read())
                    return np.array(doc["outputs"][0]["data"])

            return await asyncio.gather(*(one(i) for i in range(len(images))))

    got = asyncio.run(main())
    for i, row in enumerate(got):
        np.testing.assert_allclose(row, want[i], atol=1e-5)
    assert server.app.metrics.batch_size.labels("mnist", "")._sum.get() >= 300


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"inputs": []}', 400, "non-empty 'inputs'"),
    (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}', 400,
     "Unknown input name"),
    (b'{"inputs": [{"name": "input_1", "shape": [1, 28, 28], "datatype": "FP32", "data": [1]}]}',
     422, "wrong shape"),
    (b'{"inputs": [{"name": "input_1", "shape": [1, 28, 28, 1], "datatype": "INT64", '
     b'"data": [1]}]}', 422, "wrong datatype"),
    (b'{"inputs": [{"name": "input_1", "shape": [1, 28, 28, 1], "datatype": "FP32", '
     b'"data": [1, 2]}]}', 422, "does not match its shape"),
    (b'{"inputs": [{"name": "input_1", "shape": [2147483647, 2147483647, 28, 1], '
     b'"datatype": "FP32", "data": [1]}]}', 422, "wrong shape"),
    (b'{"inputs": [{"name": "input_1", "shape": [1, 28, 28, 1], "datatype": "FP32", '
     b'"data": ["a"]}]}', 422, "not FP32"),
    (b"[" * 5000 + b"]" * 5000, 400, "not valid JSON"),
])
def test_bad_requests_get_a_clear_4xx_without_traces(server, body, status, words):
    with server.client() as c:
        r = c.post("/v2/models/mnist/infer", content=body)
    assert r.status_code == status
    message = r.json()["error"]
    assert words in message
    assert "Traceback" not in message and "/work/" not in message and ".py" not in message


def test_nan_and_unknown_model(server):
    images, _ = mnist_images(1)
    images[0, 0, 0, 0] = np.nan
    body = orjson.dumps({"inputs": [{"name": "input_1", "shape": [1, 28, 28, 1],
                                     "datatype": "FP32",
                                     "data": [None if np.isnan(v) else float(v)
                                              for v in images.reshape(-1)]}]})
    with server.client() as c:
        assert c.post("/v2/models/mnist/infer", content=body).status_code == 422
        r = c.post("/v2/models/..%2f..%2fetc/infer", content=infer_body(images))
        assert r.status_code == 404
        assert c.post("/v2/models/mnist/versions/9/infer",
                      content=infer_body(mnist_images(1)[0])).status_code == 404


def test_non_finite_inputs_fail_alone_while_their_batch_neighbours_are_answered(server):
    images, _ = mnist_images(40)
    want = expected(images)
    nan = images[:1].copy()
    nan[0, 5, 5, 0] = np.nan
    inp = triton.InferInput("input_1", [1, 28, 28, 1], "FP32")
    inp.set_data_from_numpy(nan, binary_data=True)
    nan_body, json_size = triton.InferenceServerClient.generate_request_body([inp])
    overflow = orjson.loads(infer_body(images[:1]))  # 1e39 is finite JSON but inf as FP32
    overflow["inputs"][0]["data"][7] = 1e39

    async def main():
        async with aiohttp.ClientSession(server.url) as session:
            async def post(body, headers=None):
                async with session.post("/v2/models/mnist/infer", data=body,
                                        headers=headers) as r:
                    return r.status, orjson.loads(await r.read())

            bad = [post(nan_body, {"Inference-Header-Content-Length": str(json_size)}),
                   post(orjson.dumps(overflow))]
            good = [post(infer_body(images[i:i + 1])) for i in range(len(images))]
            return await asyncio.gather(*bad, *good)

    (nan_status, nan_doc), (inf_status, inf_doc), *good = asyncio.run(main())
    assert nan_status == inf_status == 422
    assert "Input 'input_1' contains NaN or infinity" in nan_doc["error"]
    assert "NaN or infinity" in inf_doc["error"]
    for i, (status, doc) in enumerate(good):
        assert status == 200
        np.testing.assert_allclose(doc["outputs"][0]["data"], want[i], atol=1e-5)


def test_body_over_the_limit_gets_413_with_content_length_and_chunked(server):
    big = b"x" * (2 << 20)
    with server.client() as c:
        assert c.post("/v2/models/mnist/infer", content=big).status_code == 413

        def chunks():
            for _ in range(64):
                yield b"y" * 65536

        assert c.post("/v2/models/mnist/infer", content=chunks()).status_code == 413
        assert c.post("/v1/feedback", content=chunks()).status_code == 413
        assert c.get("/v2/health/ready").status_code == 200


def test_v1_predict_gives_labels_and_ids_and_feedback_is_idempotent(server, store):
    images, _ = mnist_images(3)
    with server.client() as c:
        r = c.post("/v1/models/mnist/predict", json={"inputs": images.tolist()})
        assert r.status_code == 200
        preds = r.json()["predictions"]
        want = expected(images)
        for p, row in zip(preds, want, strict=True):
            assert p["label"] == DIGITS[int(row.argmax())]
            assert abs(p["probabilities"][p["label"]] - row.max()) < 1e-5
        pid = preds[0]["id"]
        first = c.post("/v1/feedback", json={"id": pid, "label": "seven"})
        assert first.status_code == 200 and first.json()["created"] is True
        again = c.post("/v1/feedback", json={"id": pid, "label": "seven"})
        assert again.status_code == 200 and again.json()["created"] is False
        assert c.post("/v1/feedback", json={"id": pid, "label": "one"}).status_code == 409
        assert c.post("/v1/feedback", json={"id": "nope", "label": 1}).status_code == 404
        assert c.post("/v1/feedback", json={"id": pid}).status_code == 400
        assert c.post("/v1/feedback", json={"rating": 2}).status_code == 422
        bad = c.post("/v1/models/mnist/predict", json={"inputs": [[1, 2, 3]]})
        assert bad.status_code == 422 and "wrong shape" in bad.json()["error"]
        overflow = images[:1].tolist()
        overflow[0][3][3][0] = 1e39  # finite in JSON, inf as FP32
        nan = c.post("/v1/models/mnist/predict", json={"inputs": overflow})
        assert nan.status_code == 422 and "NaN or infinity" in nan.json()["error"]
    feedback = [f for f in store.list_feedback("mnist") if f["prediction_id"] == pid]
    assert len(feedback) == 1 and feedback[0]["label"] == "seven"


def test_predictions_are_logged_to_the_store_in_the_background(server, store):
    images, _ = mnist_images(4)
    with server.client() as c:
        ids = c.post("/v2/models/mnist/infer",
                     content=infer_body(images)).json()["parameters"]["prediction_ids"]
    server.app.predlog.flush()
    for pid, image in zip(ids, images, strict=True):
        row = store.get_prediction(pid)
        assert row["model"] == "mnist" and len(row["outputs"]["output_1"]) == 10
        assert row["input_digest"] == xxhash.xxh3_128_hexdigest(image.tobytes())


def test_metrics_are_prometheus_text(server):
    with server.client() as c:
        c.post("/v2/models/mnist/infer", content=infer_body(mnist_images(1)[0]))
        c.post("/v2/models/mnist/versions/2/infer", content=infer_body(mnist_images(1)[0]))
        text = c.get("/metrics").text
    for name in ("lepton_requests_total", "lepton_request_latency_seconds_bucket",
                 "lepton_batch_size_bucket", "lepton_queue_depth", "process_cpu_seconds_total"):
        assert name in text
    assert 'lepton_requests_total{code="200",model="mnist",route="infer",version=""}' in text
    assert 'lepton_batch_size_count{model="mnist",version="2"}' in text


def test_openapi_documents_the_hot_routes(server):
    with server.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
        assert "/v2/models/{name}/infer" in paths and "/v1/feedback" in paths
        assert c.get("/docs").status_code == 200
