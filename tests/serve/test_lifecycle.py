"""Start-up, overload, timeouts, auth and shutdown: RELIABILITY items 5, 6, 8, 9, 10."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import tritonclient.http as triton

from lepton.errors import ConfigError
from lepton.serve.app import LeptonApp, ModelSource, ServeOptions
from lepton.serve.auth import BearerAuth, check_bind, resolve_token
from tests.serve.conftest import cnn_runner, free_port, mnist_images, run_app
from tests.serve.serve_cnn import Slow
from tests.serve.test_server import infer_body

ROOT = Path(__file__).parents[2]
TOKEN = "s3cret-token-for-tests-0123456789"


def post_many(url: str, n: int, body: bytes, timeout: float = 30) -> list[httpx.Response]:
    def one(_):
        return httpx.post(url, content=body, timeout=timeout)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_liveness_answers_while_loading_and_readiness_waits_for_warm_up():
    loaded = threading.Event()

    def slow_load():
        loaded.wait(30)
        return cnn_runner()

    app = LeptonApp([ModelSource("mnist", slow_load)], ServeOptions(log_predictions=False))
    with run_app(app, wait_ready=False) as srv, srv.client() as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 503
        r = c.post("/v2/models/mnist/infer", content=infer_body(mnist_images(1)[0]))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        loaded.set()
        deadline = time.time() + 30
        while c.get("/v2/health/ready").status_code != 200 and time.time() < deadline:
            time.sleep(0.05)
        assert c.post("/v2/models/mnist/infer",
                      content=infer_body(mnist_images(1)[0])).status_code == 200
        app.begin_drain()
        assert c.get("/v2/health/ready").status_code == 503


def test_overload_gets_503_with_retry_after_and_the_queue_stays_bounded():
    app = LeptonApp([ModelSource("mnist", lambda: cnn_runner(module=Slow(0.0)))],
                    ServeOptions(max_batch_size=1, max_queue=3, log_predictions=False))
    with run_app(app) as srv:
        app.table.defaults["mnist"].runner.module.sleep_s = 0.2
        responses = post_many(srv.url + "/v2/models/mnist/infer", 16,
                              infer_body(mnist_images(1)[0]))
        codes = sorted(r.status_code for r in responses)
        assert 200 in codes and 503 in codes and set(codes) <= {200, 503}
        rejected = [r for r in responses if r.status_code == 503]
        assert all(int(r.headers["retry-after"]) >= 1 for r in rejected)
        assert "overloaded" in rejected[0].json()["error"]
        assert app.table.defaults["mnist"].batcher.stats.rejected == len(rejected)


def test_request_timeout_gets_504_and_the_server_keeps_serving():
    app = LeptonApp([ModelSource("mnist", lambda: cnn_runner(module=Slow(0.0)))],
                    ServeOptions(timeout_s=0.3, log_predictions=False))
    with run_app(app) as srv, srv.client() as c:
        module = app.table.defaults["mnist"].runner.module
        module.sleep_s = 1.0
        r = c.post("/v2/models/mnist/infer", content=infer_body(mnist_images(1)[0]))
        assert r.status_code == 504 and "timed out" in r.json()["error"]
        module.sleep_s = 0.0
        time.sleep(1.0)
        assert c.post("/v2/models/mnist/infer",
                      content=infer_body(mnist_images(1)[0])).status_code == 200


def test_token_is_required_everywhere_but_the_health_probes():
    app = LeptonApp([ModelSource("mnist", cnn_runner)],
                    ServeOptions(token=TOKEN, log_predictions=False))
    body = infer_body(mnist_images(1)[0])
    with run_app(app) as srv:
        with srv.client() as anon:
            assert anon.get("/v2/health/live").status_code == 200
            assert anon.get("/v2/health/ready").status_code == 200
            for method, path in (("POST", "/v2/models/mnist/infer"), ("GET", "/v2/models/mnist"),
                                 ("GET", "/metrics"), ("GET", "/openapi.json"),
                                 ("POST", "/v1/feedback"), ("GET", "/nowhere")):
                r = anon.request(method, path, content=body)
                assert r.status_code == 401, path
                assert r.headers["www-authenticate"] == "Bearer"
        with srv.client("wrong-token-of-the-same-kind-000") as bad:
            assert bad.post("/v2/models/mnist/infer", content=body).status_code == 401
        with srv.client(TOKEN) as good:
            assert good.post("/v2/models/mnist/infer", content=body).status_code == 200
            assert good.get("/metrics").status_code == 200
        client = triton.InferenceServerClient(srv.url.removeprefix("http://"))
        inp = triton.InferInput("input_1", [1, 28, 28, 1], "FP32")
        inp.set_data_from_numpy(mnist_images(1)[0], binary_data=True)
        result = client.infer("mnist", [inp], headers={"Authorization": f"Bearer {TOKEN}"})
        assert result.as_numpy("output_1").shape == (1, 10)
        client.close()


def test_bind_rules_and_token_checks(monkeypatch):
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("localhost", None)
    with pytest.raises(ConfigError, match="without an API token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(ConfigError, match="too short"):
        resolve_token("abc")
    monkeypatch.setenv("LEPTON_TOKEN", TOKEN)
    assert resolve_token(None) == TOKEN
    auth = BearerAuth(TOKEN)
    assert auth.allows("/v2/health/ready", None)
    assert not auth.allows("/v2", None) and not auth.allows("/v2", b"Bearer x")
    assert auth.allows("/v2", f"Bearer {TOKEN}".encode())


def test_sigterm_lets_in_flight_requests_finish_and_exits_0():
    port = free_port()
    script = ROOT / "tests" / "serve" / "serve_cnn.py"
    proc = subprocess.Popen([sys.executable, str(script), str(port), "0.3"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        body = infer_body(mnist_images(1)[0])
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(httpx.post, url + "/v2/models/mnist/infer", content=body,
                                   timeout=30) for _ in range(6)]
            time.sleep(0.3)  # requests are queued or running
            proc.send_signal(signal.SIGTERM)
            codes = [f.result().status_code for f in futures]
        assert codes == [200] * 6
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in proc.stdout.read().decode()
