"""`lepton serve` as users run it: a real artifact, a real process, the store, signals."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lepton.cli import serve as serve_cli
from lepton.client import Client, RequestError
from lepton.errors import ConfigError, LeptonError
from tests.serve.conftest import digits_artifact, free_port, mnist_images

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """The SPEC §1 CNN trained for one epoch on 3,000 real MNIST images."""
    return digits_artifact(tmp_path_factory.mktemp("art"), 3000)


class Served:
    def __init__(self, proc: subprocess.Popen, url: str, home: Path, started: float) -> None:
        self.proc, self.url, self.home, self.started = proc, url, home, started


def start(artifact: Path, home: Path, *extra: str) -> Served:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEPTON_HOME": str(home)}
    env.pop("LEPTON_TOKEN", None)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lepton", "serve", str(artifact),
                             "--port", str(port), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    client = Client(url)
    deadline = time.time() + 120
    while not client.ready():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() < deadline, "server did not become ready"
        time.sleep(0.05)
    return Served(proc, url, home, started)


def test_serve_an_artifact_end_to_end(artifact, tmp_path):
    from lepton.core import load_model
    from lepton.store import Store

    srv = start(artifact, tmp_path / "home")
    print(f"cold start to ready: {time.perf_counter() - srv.started:.2f} s")
    images, labels = mnist_images(200)
    try:
        client = Client(srv.url)
        preds = client.predict("digits", images)
        accuracy = np.mean([p["label"] == str(y) for p, y in zip(preds, labels, strict=True)])
        assert accuracy > 0.8
        out = client.infer("digits", images[:8])
        name = next(iter(out))
        want = load_model(artifact).predict(images[:8], verbose=0)
        np.testing.assert_allclose(out[name], want, atol=1e-5)
        ack = client.feedback(preds[0]["id"], label=str(labels[0]))
        assert ack["created"] is True
    finally:
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(timeout=60)
    output = srv.proc.stdout.read().decode()
    assert code == 0, output
    assert "on http://127.0.0.1:" in output and "Traceback" not in output
    with Store.open(workspace=srv.home) as store:
        logged = store.list_predictions("digits", limit=None)
        assert len(logged) == 208  # every row answered was logged on the way out
        assert {r["id"] for r in logged} >= {p["id"] for p in preds}
        feedback = store.list_feedback("digits")
        assert [f["label"] for f in feedback] == [str(labels[0])]


def test_acknowledged_feedback_survives_kill_9(artifact, tmp_path):
    from lepton.store import Store

    srv = start(artifact, tmp_path / "home")
    images, labels = mnist_images(64)
    acknowledged: list[str] = []
    stop = threading.Event()

    def send_feedback() -> None:
        client = Client(srv.url, timeout=5)
        i = 0
        while not stop.is_set():
            try:
                pid = client.predict("digits", images[i % 64:i % 64 + 1])[0]["id"]
                client.feedback(pid, label=str(labels[i % 64]))
            except (OSError, RequestError):
                return  # the server is gone
            acknowledged.append(pid)
            i += 1

    threads = [threading.Thread(target=send_feedback) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while len(acknowledged) < 20 and time.time() < deadline:
        time.sleep(0.05)
    srv.proc.send_signal(signal.SIGKILL)  # while three clients are still writing
    srv.proc.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acknowledged) > 5
    with Store.open(workspace=srv.home) as store:
        stored = [f["prediction_id"] for f in store.list_feedback("digits")]
    assert set(acknowledged) <= set(stored)
    assert len(stored) == len(set(stored))


def test_workers_share_the_port_and_drain_on_sigterm(artifact, tmp_path):
    srv = start(artifact, tmp_path / "home", "--workers", "2", "--no-log")
    images, _ = mnist_images(20)
    try:
        for i in range(20):
            with Client(srv.url) as client:  # new connections, spread over both workers
                assert len(client.predict("digits", images[i:i + 1])) == 1
        for _ in range(4):  # whichever worker answers, the counts cover both
            status, _, text = Client(srv.url)._request("GET", "/metrics")
            line = 'lepton_requests_total{code="200",model="digits",route="predict",version=""}'
            assert status == 200
            assert f"{line} 20.0" in text.decode()
    finally:
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(timeout=60)
    assert code == 0, srv.proc.stdout.read().decode()


def test_public_bind_without_token_is_refused_and_bad_models_are_one_line_errors(
        artifact, tmp_path, monkeypatch):
    monkeypatch.delenv("LEPTON_TOKEN", raising=False)
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    with pytest.raises(ConfigError, match="Refusing to listen on 0.0.0.0"):
        serve_cli.run(parser.parse_args([str(tmp_path), "--host", "0.0.0.0"]))
    with pytest.raises(LeptonError, match="not a Lepton artifact"):
        serve_cli.run(parser.parse_args([str(tmp_path)]))
    with pytest.raises(ConfigError, match="Invalid model name"):
        serve_cli.run(parser.parse_args([str(artifact), "--name", "../etc"]))


def test_registry_references_are_served_with_their_versions(artifact, tmp_path, monkeypatch):
    from lepton.registry import Registry
    from lepton.serve.app import ServeOptions
    from lepton.serve.server import BackgroundServer, ServerConfig, build_app, resolve_models
    from lepton.store import Store

    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LEPTON_DB_URL", raising=False)
    store = Store.open()
    registry = Registry(store)
    registry.register(artifact, "digits")
    registry.register(artifact, "digits")
    registry.promote("digits", 1, "production")
    refs = resolve_models(["digits@production", "digits:2"])
    assert [(r.name, r.version, r.registry_version) for r in refs] == [
        ("digits", "1", 1), ("digits", "2", 2)]
    images, _ = mnist_images(2)
    app = build_app(ServerConfig(models=refs, options=ServeOptions()),
                    store_factory=lambda: store)
    with BackgroundServer(app) as url:
        client = Client(url)
        assert client.metadata("digits")["versions"] == ["1", "2"]
        client.infer("digits", images, version="2")
        v2_ids = client.last_ids
        preds = client.predict("digits", images)  # the first reference is the default
        app.predlog.flush()
        assert store.get_prediction(preds[0]["id"])["version"] == 1
        assert store.get_prediction(v2_ids[0])["version"] == 2
    with pytest.raises(LeptonError):
        resolve_models(["digits:7"])


def test_cli_errors_are_one_line_and_bench_can_start_its_own_server(artifact, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEPTON_HOME": str(tmp_path / "home")}
    env.pop("LEPTON_TOKEN", None)
    bad = subprocess.run([sys.executable, "-m", "lepton", "serve", str(tmp_path / "missing")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    public = subprocess.run([sys.executable, "-m", "lepton", "serve", str(artifact), "--host",
                             "0.0.0.0"], env=env, capture_output=True, text=True, timeout=120)
    assert public.returncode == 2 and "without an API token" in public.stderr
    bench = subprocess.run([sys.executable, "-m", "lepton", "bench", str(artifact), "-c", "4",
                            "-d", "1", "--binary"], env=env, capture_output=True, text=True,
                           timeout=180)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    assert "req/s" in bench.stdout and "errors 0" in bench.stdout
