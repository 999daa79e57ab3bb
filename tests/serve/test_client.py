"""lepton.Client and `lepton bench` against a real server."""

from __future__ import annotations

import argparse
import re
import socket

import numpy as np
import pytest

import lepton
from lepton.cli import bench, main
from lepton.client import RequestError
from lepton.errors import LeptonError, ServerUnavailableError
from lepton.serve import loadgen
from tests.serve.conftest import DIGITS, free_port, mnist_images
from tests.serve.test_server import expected


def test_client_predict_infer_and_feedback(server):
    images, _ = mnist_images(4)
    with lepton.Client(server.url) as client:
        assert client.ready()
        assert client.models()[0]["name"] == "mnist"
        preds = client.predict("mnist", images)
        assert [p["label"] for p in preds] == [DIGITS[i] for i in expected(images).argmax(1)]
        out = client.infer("mnist", images, request_id="abc")
        np.testing.assert_allclose(out["output_1"], expected(images), atol=1e-5)
        assert len(client.last_ids) == 4
        out2 = client.infer("mnist", {"input_1": images[:1]}, version="2")
        assert out2["output_1"].shape == (1, 10)
        ack = client.feedback(client.last_ids[0], label="three", key="k-1")
        assert ack["created"] is True
        assert client.feedback(client.last_ids[0], label="three", key="k-1")["created"] is False
        with pytest.raises(RequestError) as info:
            client.predict("nope", images)
        assert info.value.http_status == 404 and "Unknown model" in str(info.value)
        with pytest.raises(RequestError) as info:
            client.infer("mnist", images[:, :, :, 0])
        assert info.value.http_status == 422


def test_load_generator_counts_and_percentiles(server):
    import asyncio

    meta = lepton.Client(server.url).metadata("mnist")
    body, headers = loadgen.infer_request(meta, binary=True)
    result = asyncio.run(loadgen.run_load(server.url + "/v2/models/mnist/infer", body, headers,
                                          concurrency=4, duration_s=1.0, warmup_s=0.2))
    assert result.ok > 0 and not result.errors and result.connections == 4  # kept alive
    assert result.percentile(50) <= result.percentile(99)
    bad = asyncio.run(loadgen.run_load(server.url + "/v2/models/nope/infer", body, headers,
                                       concurrency=2, duration_s=0.5, warmup_s=0.1))
    assert bad.ok == 0 and bad.errors["404"] > 0
    # a server that closes after each answer: the generator reconnects, nothing is lost
    closing = loadgen.measure(server.url + "/v2/models/mnist/infer", body,
                              {**headers, "Connection": "close"}, concurrency=2,
                              duration_s=0.5, warmup_s=0.1)
    assert closing.ok > 0 and not closing.errors and closing.connections > closing.ok / 2
    nobody = loadgen.measure(f"http://127.0.0.1:{free_port()}/v2/models/mnist/infer", body,
                             headers, concurrency=2, duration_s=0.3, warmup_s=0.1)
    assert nobody.ok == 0 and nobody.errors["ConnectionRefusedError"] > 0


def test_bench_command_prints_throughput_latency_and_batch_sizes(server, capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([server.url + "/v2/models/mnist", "-c", "8", "-d", "1"])
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert "req/s" in out and "p99" in out and "errors 0" in out
    assert "server batch sizes" in out
    buckets = re.findall(r"<=(\d+)\s+(\d+)", out)  # only the sizes that occurred are listed
    assert buckets and sum(int(n) for _, n in buckets) > 0
    assert all(int(size) <= 8 for size, _ in buckets)  # 8 clients: never a batch above 8


def test_nothing_listening_is_a_lepton_error_naming_the_url_and_the_fix():
    url = f"http://127.0.0.1:{free_port()}"  # bound and closed again: the port refuses
    with lepton.Client(url, timeout=5) as client:
        assert client.ready() is False
        with pytest.raises(ServerUnavailableError) as info:
            client.predict("mnist", [[0.0]])
    error = info.value
    assert isinstance(error, LeptonError) and isinstance(error, ConnectionError)
    assert url in str(error) and "ConnectionRefusedError" in str(error)
    assert "lepton serve" in str(error) and "host and port" in str(error)


def test_a_server_that_never_answers_times_out_as_a_lepton_error():
    with socket.socket() as listener:  # accepts connections into its backlog, never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with lepton.Client(url, timeout=0.5) as client, \
                pytest.raises(ServerUnavailableError) as info:
            client.models()
    assert url in str(info.value) and "TimeoutError" in str(info.value)


def test_cli_against_a_closed_port_is_one_line(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["bench", url, "-d", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("lepton bench: error: Cannot reach a Lepton server at " + url)
