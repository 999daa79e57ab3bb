"""Replicas behind one port (a real `lepton serve --autoscale` on 127.0.0.1): a load step adds
a replica after the up delay that then takes traffic, the end of the load drains it after the
down delay, no request is lost in either, and a killed replica is replaced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.serve.conftest import digits_artifact, free_port, mnist_images
from tests.serve.test_cost import _gauges

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return digits_artifact(tmp_path_factory.mktemp("art"), 500)


class Load:
    """``clients`` threads sending requests, one connection each (closed after the answer,
    so a draining replica never holds an idle keep-alive connection); counts every outcome."""

    def __init__(self, url: str, clients: int, rows: int = 4) -> None:
        images, _ = mnist_images(rows)
        self.rows = rows
        self.body = json.dumps({"inputs": [{"name": "input_1", "shape": list(images.shape),
                                            "datatype": "FP32",
                                            "data": images.ravel().tolist()}]}).encode()
        self.url = url + "/v2/models/digits/infer"
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(clients)]

    def _client(self) -> None:
        import http.client

        host, port = self.url.split("/")[2].split(":")
        path = "/" + self.url.split("/", 3)[3]
        while not self._stop.is_set():
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                conn.request("POST", path, self.body, {"Content-Type": "application/json",
                                                       "Connection": "close"})
                r = conn.getresponse()
                data = r.read()
                if r.status == 200 and len(json.loads(data)["outputs"][0]["data"]) == \
                        10 * self.rows:
                    self.ok += 1
                else:
                    self.failed.append(f"{r.status} {data[:80]!r}")
            except (OSError, http.client.HTTPException) as exc:
                self.failed.append(repr(exc))
            finally:
                conn.close()

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def metrics(url: str) -> dict[tuple, float]:
    return _gauges(httpx.get(url + "/metrics", timeout=10).text)


def replicas(url: str) -> list[tuple[int, float]]:
    """(pid, requests served) per live replica."""
    m = metrics(url)
    return sorted((int(dict(k[1:])["pid"]), v) for k, v in m.items()
                  if k[0] == "lepton_replica_requests")


def wait_for(what, timeout: float = 90.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = what()
            if value:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(every)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_autoscale_up_down_no_request_lost_and_killed_replica_replaced(artifact, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEPTON_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "lepton", "serve", str(artifact),
                             "--port", str(port), "--no-log", "--autoscale", "1:2",
                             "--scale-up-delay", "1", "--scale-down-delay", "3",
                             "--drain", "10"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200)
        assert metrics(url)[("lepton_replicas",)] == 1
        (first, _), = replicas(url)
        with Load(url, clients=8) as load:  # ~8 in flight on 1 replica: wants 2
            stepped = time.monotonic()
            two = wait_for(lambda: len(r := replicas(url)) == 2 and r)
            added = next(pid for pid, _ in two if pid != first)
            # the new replica takes traffic once it has loaded
            wait_for(lambda: dict(replicas(url)).get(added, 0) > 0)
            assert time.monotonic() - stepped >= 1.0  # not before the up delay
            time.sleep(1.0)
            assert metrics(url)[("lepton_replicas",)] == 2
        with Load(url, clients=1) as light:  # 1 in flight: fits in one, drained after 3 s
            wait_for(lambda: len(replicas(url)) == 1)
            time.sleep(0.5)
        assert load.failed == [] and light.failed == []
        assert load.ok > 20 and light.ok > 0
        (survivor, _), = replicas(url)
        os.kill(survivor, signal.SIGKILL)  # a replica that dies is replaced
        wait_for(lambda: (r := replicas(url)) and r[0][0] != survivor)
        wait_for(lambda: httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200)
        r = httpx.post(url + "/v2/models/digits/infer", json={"inputs": [{
            "name": "input_1", "shape": [1, 28, 28, 1], "datatype": "FP32",
            "data": np.zeros(784).tolist()}]}, timeout=30)
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "restarting" in out and "draining replica" in out


def test_replicas_flag_errors_are_one_line(artifact):
    for extra in (["--autoscale", "3:1"], ["--replicas", "2", "--autoscale", "1:2"],
                  ["--replicas", "2", "--workers", "2"], ["--replicas", "0"]):
        bad = subprocess.run([sys.executable, "-m", "lepton", "serve", str(artifact), *extra],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
