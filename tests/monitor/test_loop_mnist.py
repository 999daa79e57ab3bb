"""The whole loop on real MNIST, through a real server on 127.0.0.1: the demo's CNN (trained
small: 3,000 digits, one epoch) is served by alias with ``--log-inputs 1.0 --reload``;
clean traffic raises no alarm over several windows; inverted digits are reported as drift
within the first window of 100 rows (10 requests); feedback comes back; a challenger trained
on random labels is not promoted (and the record says why); one trained on the true labels
wins on the inverted holdout without losing more than 0.5 points on the original test, is
promoted, and the running server switches to it."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from tests.monitor.conftest import store, workspace  # noqa: F401 - fixtures

WINDOW = 100


def infer(client: httpx.Client, images: np.ndarray, batch: int = 10) -> list[tuple[str, str]]:
    """(prediction id, model version) per image, sent as V2 infer requests of ``batch``."""
    out = []
    for start in range(0, len(images), batch):
        x = images[start:start + batch].astype(np.float32)
        reply = client.post("/v2/models/mnist/infer", json={"inputs": [{
            "name": "input_1", "shape": list(x.shape), "datatype": "FP32",
            "data": x.reshape(-1).tolist()}]})
        assert reply.status_code == 200, reply.text
        doc = reply.json()
        out += [(pid, doc["model_version"]) for pid in doc["parameters"]["prediction_ids"]]
    return out


def feedback(server, client: httpx.Client, ids: list[tuple[str, str]],
             labels: np.ndarray) -> None:
    """The first label through POST /v1/feedback, the rest straight into the store (the
    route is tested elsewhere; one HTTP round trip each would only add time here)."""
    (first, _), *rest = ids
    assert client.post("/v1/feedback", json={"id": first, "label": str(int(labels[0]))}
                       ).status_code == 200
    for (pid, _), label in zip(rest, labels[1:], strict=True):
        server.app.store.add_feedback(pid, label=str(int(label)))


@pytest.mark.slow
def test_mnist_drift_feedback_retrain_promote_reload(store, tmp_path):  # noqa: F811
    from lepton.demo import load_mnist, train_mnist
    from lepton.monitor import monitor
    from lepton.registry import Registry
    from lepton.retrain import retrain
    from lepton.serve.options import ServeOptions
    from lepton.serve.server import BackgroundServer, ServerConfig, build_app, resolve_models

    (x_train, y_train), (x_all, y_all) = load_mnist(samples=3000)
    x_test, y_test = x_all[:1000], y_all[:1000]  # the original test split
    result = train_mnist(tmp_path, ((x_train, y_train), (x_test, y_test)), epochs=1,
                         verbose=0, say=lambda *_: None)
    registry = Registry(store)
    champion = registry.register(result.artifact, "mnist", description="small demo CNN")
    registry.promote("mnist", champion["version"], "production")
    original = tmp_path / "mnist.npz"
    np.savez(original, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    config = ServerConfig(models=resolve_models(["mnist@production"]),
                          options=ServeOptions(sample_inputs=1.0, reload_s=0.3))
    server = BackgroundServer(build_app(config, store_factory=lambda: store))
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            started = time.time()
            infer(client, x_all[1000:1300])  # clean: 3 windows
            server.app.predlog.flush()  # what the writer thread does every 0.5 s
            clean = monitor("mnist@production", since=started, window=WINDOW, store=store,
                            save=False)
            assert [w["drift"]["drifted"] for w in clean["windows"]] == [[], [], []]
            shifted_at = time.time()
            infer(client, 1.0 - x_all[1300:1300 + WINDOW])  # inverted digits
            server.app.predlog.flush()
            shifted = monitor("mnist@production", since=shifted_at, window=WINDOW,
                              store=store)
            first = shifted["windows"][0]
            assert first["window"]["rows"] == WINDOW
            assert "input_1.channel0_mean" in first["drift"]["drifted"]
            embedding = first["embedding_drift"]  # MMD of penultimate vectors (kept inputs)
            assert embedding["method"] == "mmd" and embedding["drifted"]
            assert all(w["embedding_drift"]["method"] == "mmd" for w in clean["windows"])

            # random labels: the challenger learns nothing, the record says so
            noisy_at = time.time()
            ids = infer(client, 1.0 - x_all[2000:2300])
            feedback(server, client, ids, np.random.default_rng(0).integers(0, 10, len(ids)))
            noisy = retrain("mnist", data=original, store=store, feedback_since=noisy_at,
                            epochs=1, resamples=1000, trigger="drift",
                            evidence={"drifted": first["drift"]["drifted"]})
            assert not noisy["promoted"] and "not sure" in noisy["reason"]
            assert registry.resolve("mnist@production")["version"] == champion["version"]

            # true labels: promoted, and the running server follows the alias
            labelled_at = time.time()
            ids = infer(client, 1.0 - x_all[3000:3400])
            feedback(server, client, ids, y_all[3000:3400])
            decision = retrain("mnist", data=original, store=store,
                               feedback_since=labelled_at, epochs=1, resamples=1000,
                               trigger="feedback")
            assert decision["promoted"], decision["reason"]
            gain = decision["comparison"]["production_holdout"]
            assert gain["low"] >= 0.5 and gain["rows"] == 200
            assert decision["comparison"]["original_test"]["difference"] >= -0.5
            assert decision["comparison"]["original_test"]["rows"] == 1000
            new = str(decision["challenger_version"])
            deadline, version = time.time() + 60, None
            while version != new and time.time() < deadline:
                version = infer(client, x_all[:10])[0][1]
                time.sleep(0.1)
            assert version == new
    finally:
        server.stop()
