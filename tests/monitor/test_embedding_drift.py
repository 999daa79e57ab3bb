"""Embedding drift: the penultimate layer of Sequential, functional and subclassed models
(the model left as it was), MMD² and its permutation p-value against a brute-force
computation, the reference's embeddings part, a small MNIST CNN (clean held-out digits: no
drift; inverted or rotated: drift), a ``lepton train`` text model on SMS (clean held-out
messages: no drift; spam only, or documentation text: drift), and the monitor on served
windows (without kept inputs it says ``--log-inputs`` is needed; with them, the result is
stored, in the page and in the Prometheus gauge)."""

from __future__ import annotations

import collections
import inspect
import json
import os
import textwrap
import time

import httpx
import numpy as np
import pandas as pd
import pytest
import torch

from lepton.core import Input, Model, Sequential, layers
from lepton.core.embeddings import penultimate
from lepton.errors import ArtifactError
from lepton.monitor.embedding import NEEDS_INPUTS, NO_REFERENCE, embedding_drift, mmd_test, rbf
from lepton.sketch.reference import check_reference, embedding_sketch, project
from tests.conftest import FIXTURES
from tests.monitor.conftest import store, workspace  # noqa: F401 - fixtures


# -- penultimate ---------------------------------------------------------------------------
class Subclassed(Model):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = layers.Dense(6, activation="relu")
        self.drop = layers.Dropout(0.5)
        self.head = layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.head(self.drop(self.hidden(x.reshape(x.shape[0], -1))))


def _functional() -> Model:
    inputs = Input((8, 8, 1))
    h = layers.Flatten()(inputs)
    h = layers.Dense(7, activation="relu")(h)
    return Model(inputs, layers.Dense(3, activation="softmax")(h))


def _state(model: Model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("make, width", [
    (lambda: Sequential([layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                         layers.Dense(3, activation="softmax")]), 36),  # Dense flattens maps
    (_functional, 7),
    (Subclassed, 6),
])
def test_penultimate_is_the_heads_input_and_leaves_the_model_as_it_was(make, width):
    x = np.random.default_rng(0).random((300, 8, 8, 1), dtype=np.float32)
    model = make()
    model.predict(x[:2])
    model.train()
    before = _state(model)
    emb = penultimate(model, x)
    assert emb is not None and emb.shape == (256, width) and emb.dtype == np.float32
    assert np.array_equal(emb, penultimate(model, x))  # the sample is seeded
    assert penultimate(model, x, rows=50, batch_size=7).shape == (50, width)
    assert penultimate(model, x[:10]).shape == (10, width)
    assert model.training and all(m.training for m in model.modules())  # mode restored
    assert not any(m._forward_pre_hooks for m in model.modules())  # hooks removed
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the head's input for the rows sampled is what the layers compute on those rows
    rows = np.sort(np.random.default_rng(0).choice(300, 256, replace=False))
    model.eval()
    head = model.head if isinstance(model, Subclassed) else model.layers[-1]
    seen = []
    handle = head.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    with torch.no_grad():
        model(torch.from_numpy(x[rows]))
    handle.remove()
    assert np.allclose(emb, seen[0].flatten(1).numpy(), atol=1e-6)


def test_penultimate_is_none_without_a_dense_head_on_vectors():
    images = np.random.default_rng(1).random((20, 8, 8, 1), dtype=np.float32)
    conv = Sequential([layers.Conv2D(2, 3)])
    assert penultimate(conv, images) is None  # the last layer is no dense head
    sequences = np.random.default_rng(1).random((20, 5, 4), dtype=np.float32)
    per_step = Sequential([layers.Dense(3)])
    assert penultimate(per_step, sequences) is None  # the head sees (N, T, F), not vectors


# -- MMD ------------------------------------------------------------------------------------
def _brute_mmd(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    def k(a, b):
        return float(np.exp(-np.sum((a - b) ** 2) / (2 * sigma ** 2)))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a, b) for a in x for b in y) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_and_its_permutation_p_value_match_a_brute_force_computation():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 3)), rng.normal(0.4, 1.0, size=(9, 3))
    score, p_value = mmd_test(x, y, 1.3, permutations=40, seed=5)
    assert score == pytest.approx(_brute_mmd(x, y, 1.3), rel=1e-9)
    pooled = np.concatenate([x, y])
    order = np.argsort(np.random.default_rng(5).random((40, 21)), axis=1)
    null = [_brute_mmd(pooled[o < 12], pooled[o >= 12], 1.3) for o in order]
    assert p_value == pytest.approx((1 + sum(v >= score - 1e-12 for v in null)) / 41)
    assert np.allclose(np.diag(rbf(x, x, 1.3)), 1.0)


def test_mmd_is_calibrated_on_equal_distributions_and_sees_a_shift():
    rng = np.random.default_rng(4)
    p_same = [mmd_test(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), 2.5,
                       permutations=200, seed=s)[1] for s in range(30)]
    assert sum(p < 0.05 for p in p_same) <= 4  # about 5 % of 30 under the null
    shifted = mmd_test(rng.normal(size=(60, 4)), rng.normal(0.8, 1, size=(60, 4)), 2.5)
    assert shifted[1] < 0.01 and shifted[0] > 0.05


def test_the_reference_part_is_small_reproducible_and_checked():
    emb = np.random.default_rng(5).normal(size=(1000, 100)).astype(np.float32)
    part = embedding_sketch(emb)
    assert part["rows"] == 256 and part["dim"] == 100 and part["dims"] == 32
    assert np.asarray(part["sample"]).shape == (256, 32) and part["bandwidth"] > 0
    assert part["projection"]["method"] == "gaussian-qr"
    rows = np.sort(np.random.default_rng(0).choice(1000, 256, replace=False))
    assert np.allclose(project(emb[rows], part), part["sample"], rtol=1e-5, atol=1e-5)
    assert embedding_sketch(emb[:40, :16])["projection"]["method"] == "identity"
    base = {"rows": 1, "inputs": {}, "outputs": {}}
    part = json.loads(json.dumps(part))  # as the manifest stores it
    check_reference({**base, "embeddings": part})
    with pytest.raises(ArtifactError, match="embeddings part"):
        check_reference({**base, "embeddings": {**part, "bandwidth": -1}})
    with pytest.raises(ArtifactError, match="embeddings part"):
        check_reference({**base, "embeddings": {**part, "sample": part["sample"][:3]}})
    tampered = {**part, "projection": {**part["projection"], "checksum": 1.0}}
    with pytest.raises(ArtifactError, match="cannot be regenerated"):
        project(emb[:5], tampered)
    with pytest.raises(ArtifactError, match="another width"):
        project(emb[:5, :50], part)
    assert embedding_drift(None, emb)["status"] == NO_REFERENCE
    assert embedding_drift(part, None)["status"] == NEEDS_INPUTS
    assert "predate MMD" in embedding_drift({"sample": [[0.0]]}, emb)["status"]


# -- an image model -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_cnn(mnist_small):
    """A small CNN trained a few seconds on 2,000 MNIST digits; held-out digits apart."""
    x_train, y_train, x_test, y_test = mnist_small
    torch.manual_seed(0)
    model = Sequential([layers.Conv2D(8, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                        layers.MaxPooling2D((2, 2)), layers.Flatten(),
                        layers.Dense(32, activation="relu"),
                        layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train[:2000], y_train[:2000], epochs=2, batch_size=64, verbose=0, seed=0)
    return model, x_test, y_test


def test_digits_clean_no_drift_inverted_and_rotated_drift(digits_cnn):
    model, x_test, _ = digits_cnn
    part = embedding_sketch(penultimate(model, x_test[600:]))  # held out, like traffic
    clean = [embedding_drift(part, penultimate(model, x_test[k * 100:(k + 1) * 100], seed=k))
             for k in range(6)]
    assert not any(r["drifted"] for r in clean), [(r["score"], r["p_value"]) for r in clean]
    inverted = embedding_drift(part, penultimate(model, 1.0 - x_test[:200]))
    rotated = embedding_drift(part, penultimate(model, np.rot90(x_test[:200], 1, (1, 2))
                                                .copy()))
    for result in (inverted, rotated):
        assert result["method"] == "mmd" and result["drifted"] and result["p_value"] < 0.01
        assert result["rows"] == 200 and result["reference_rows"] == 256
    assert inverted["score"] > rotated["score"] > max(r["score"] for r in clean)


def test_lepton_train_takes_embeddings_of_image_and_text_models_on_held_out_rows(digits_cnn):
    from types import SimpleNamespace

    from lepton.artifact.reference import embeddings_of

    model, x_test, _ = digits_cnn
    x_val, x_train = x_test[:300], x_test[300:400]
    image = SimpleNamespace(kind="image", x_val=x_val)
    assert np.array_equal(embeddings_of(image, model, x_train), penultimate(model, x_val))
    few = SimpleNamespace(kind="image", x_val=x_val[:10])  # too few held out: training rows
    assert np.array_equal(embeddings_of(few, model, x_train), penultimate(model, x_train))
    assert embeddings_of(SimpleNamespace(kind="tabular", x_val=x_val), model, x_train) is None


# -- a text model ----------------------------------------------------------------------------
def _documentation(n: int) -> list[str]:
    """Real English on another topic: paragraphs of the standard library's docstrings."""
    out = []
    for module in (json, collections, os, textwrap, inspect):
        for obj in vars(module).values():
            doc = getattr(obj, "__doc__", None)
            if callable(obj) and isinstance(doc, str):
                out += [" ".join(p.split()) for p in doc.split("\n\n") if len(p.split()) >= 5]
    return out[:n]


def test_text_model_from_lepton_train_sees_a_topic_shift(tmp_path):
    from lepton.artifact.manifest import read_manifest
    from lepton.artifact.predictor import Predictor
    from lepton.train.run import train

    frame = pd.read_csv(FIXTURES / "sms_spam.tsv", sep="\t")
    frame.iloc[:2500].to_csv(tmp_path / "sms.csv", index=False)
    result = train(tmp_path / "sms.csv", "Label", model="text-embedding", out=tmp_path / "m",
                   register=False, epochs=3, seed=0)
    part = read_manifest(result.path).reference["embeddings"]  # written by lepton train
    assert part["dim"] == 64 and part["dims"] == 32 and part["rows"] == 256
    predictor = Predictor.from_artifact(result.path)

    def drift(texts: list[str], seed: int = 0) -> dict:
        x = predictor.prepare(pd.DataFrame({"SMS": texts}))
        return embedding_drift(part, penultimate(predictor.model, x, seed=seed))

    held = frame.iloc[2500:]
    clean = [drift(held.SMS.iloc[k * 200:(k + 1) * 200].tolist(), k) for k in range(4)]
    assert not any(r["drifted"] for r in clean), [(r["score"], r["p_value"]) for r in clean]
    spam = drift(held[held.Label == "spam"].SMS.tolist()[:200])
    docs = drift(_documentation(200))
    assert spam["drifted"] and docs["drifted"] and min(spam["p_value"], docs["p_value"]) < 0.01


# -- the monitor on served windows --------------------------------------------------------------
def _serve_and_infer(record, store, images: np.ndarray, keep: float) -> None:  # noqa: F811
    from lepton.serve.options import ServeOptions
    from lepton.serve.server import BackgroundServer, ServerConfig, build_app, resolve_models

    config = ServerConfig(models=resolve_models([f"{record['name']}@production"]),
                          options=ServeOptions(sample_inputs=keep))
    server = BackgroundServer(build_app(config, store_factory=lambda: store))
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            for start in range(0, len(images), 25):
                x = images[start:start + 25].astype(np.float32)
                reply = client.post(f"/v2/models/{record['name']}/infer", json={"inputs": [{
                    "name": "input_1", "shape": list(x.shape), "datatype": "FP32",
                    "data": x.reshape(-1).tolist()}]})
                assert reply.status_code == 200, reply.text
        server.app.predlog.flush()
    finally:
        server.stop()


def test_monitor_embedding_drift_on_served_windows(digits_cnn, store, tmp_path):  # noqa: F811
    from lepton.artifact.save import write_reference
    from lepton.monitor import monitor
    from lepton.monitor.page import render_page
    from lepton.registry import Registry
    from lepton.serve.metrics import MonitorGauges
    from lepton.sketch.reference import reference_for

    model, x_test, _ = digits_cnn
    path = model.save(tmp_path / "cnn", metadata={"labels": [str(i) for i in range(10)]})
    ref_x = x_test[600:]
    write_reference(path, reference_for(
        ref_x, model.predict(ref_x), input_name=model.input_names[0],
        output_name=model.output_names[0], task="multiclass", labels=list(range(10)),
        embeddings=penultimate(model, ref_x)))
    registry = Registry(store)
    record = registry.register(path, "digits")
    registry.promote("digits", record["version"], "production")

    started = time.time()
    _serve_and_infer(record, store, x_test[:100], keep=0.0)  # no --log-inputs
    plain = monitor("digits@production", since=started, store=store, save=False)
    window = plain["windows"][0]
    assert window["status"] == "ok" and window["window"]["rows"] == 100
    assert window["embedding_drift"]["status"] == NEEDS_INPUTS
    assert "embedding" not in window["drift"]["drifted"]

    kept_at = time.time()
    _serve_and_infer(record, store, np.concatenate([x_test[100:200], 1.0 - x_test[200:300]]),
                     keep=1.0)
    result = monitor("digits@production", since=kept_at, window=100, store=store)
    clean, inverted = result["windows"]
    assert clean["embedding_drift"]["method"] == "mmd" and not clean["embedding_drift"][
        "drifted"] and clean["embedding_drift"]["rows"] == 100
    assert inverted["embedding_drift"]["drifted"] and "embedding" in inverted["drift"]["drifted"]
    assert "embedding" in result["summary"]["drifted"]
    json.dumps(result, default=float)  # the CLI's --json
    page = render_page(result)
    assert "embedding drift: MMD²" in page and "embedding (mmd)" in page
    gauges = MonitorGauges()
    gauges.refresh(store, ["digits"])
    samples = [s for family in gauges.collect() for s in family.samples
               if s.name == "lepton_drift_score" and s.labels["feature"] == "embedding"]
    assert len(samples) == 1 and samples[0].labels["method"] == "mmd"
    assert samples[0].value == pytest.approx(inverted["embedding_drift"]["score"])
