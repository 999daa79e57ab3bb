"""Traffic splitting in a real server on 127.0.0.1: two registered versions of a small iris
model, an experiment in the store, the split within a binomial interval, sticky units, the
version on every answer and in the log, a live change picked up with no failed request, and
the bad inputs `lepton traffic` refuses in one line."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
from scipy.stats import binomtest

from lepton.errors import ConfigError, ConflictError, LeptonError, NotFoundError

IRIS_LABELS = ["setosa", "versicolor", "virginica"]


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data.astype(np.float32), data.target.astype(np.int64)


def save_iris(path, seed: int):
    import torch

    from lepton.core import Sequential, layers

    torch.manual_seed(seed)
    x, y = iris()
    model = Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                        layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.save(path, metadata={"task": "multiclass", "labels": IRIS_LABELS})
    return path


@pytest.fixture(scope="module")
def registry_store(tmp_path_factory):
    """A workspace whose registry holds iris v1 (production), v2 (candidate, other weights)
    and v3 (same artifact as v1: a canary that agrees)."""
    from lepton.registry import Registry
    from lepton.store import Store

    home = tmp_path_factory.mktemp("traffic")
    patch = pytest.MonkeyPatch()
    patch.setenv("LEPTON_HOME", str(home / "ws"))
    patch.setenv("LEPTON_DB_URL", f"sqlite:///{home / 'ws' / 'lepton.db'}")
    patch.setenv("LEPTON_USER", "tester")
    store = Store.open()
    registry = Registry(store)
    first, other = save_iris(home / "a", 0), save_iris(home / "b", 1)
    for path in (first, other, first):
        registry.register(path, "iris")
    registry.promote("iris", 1, "production")
    registry.promote("iris", 2, "candidate")
    registry.promote("iris", 3, "same")
    yield store
    store.close()
    patch.undo()


def clear(store) -> None:
    """No experiment left from an earlier test."""
    from sqlalchemy import delete

    from lepton.store import _schema as s

    store.write(lambda conn: conn.execute(delete(s.traffic_experiments)))


@contextmanager
def serving(store, *refs: str, **options):
    from lepton.serve.options import ServeOptions
    from lepton.serve.server import BackgroundServer, ServerConfig, build_app, resolve_models

    config = ServerConfig(models=resolve_models(list(refs)),
                          options=ServeOptions(max_latency_ms=0.5, **options))
    server = BackgroundServer(build_app(config, store_factory=lambda: store))
    url = server.start()
    try:
        yield server.app, url
    finally:
        server.stop()


ROW = {"inputs": [[5.9, 3.0, 5.1, 1.8]]}


def predict(client: httpx.Client, unit: str | None = None) -> httpx.Response:
    headers = {"x-lepton-unit": unit} if unit is not None else {}
    return client.post("/v1/models/iris/predict", json=ROW, headers=headers)


def test_split_is_within_a_binomial_interval_sticky_and_logged(registry_store):
    from lepton.serve.experiment import set_experiment
    from lepton.serve.traffic import BUCKETS, Router, bucket_of
    from lepton.store import _traffic

    store = registry_store
    clear(store)
    set_experiment(store, "iris", split="production=90,candidate=10")
    # the assignment itself over 10,000 units: a binomial test against 10 %
    router = Router({"name": "iris"}, [_arm("production", 90), _arm("candidate", 10)])
    picks = [router.pick(f"user-{i}".encode())[0] for i in range(10_000)]
    assert binomtest(sum(picks), 10_000, 0.10).pvalue > 0.001
    assert all(0 <= bucket_of(b"iris\x00", f"u{i}".encode()) < BUCKETS for i in range(100))
    with serving(store, "iris@production", "iris@candidate") as (app, url), \
            httpx.Client(base_url=url, timeout=30) as client:
        versions = []
        for i in range(1500):
            reply = predict(client, f"user-{i}")
            assert reply.status_code == 200
            header = reply.headers["lepton-model-version"]
            assert reply.json()["model_version"] == header  # header and body agree
            assert header == ("2" if picks[i] else "1")  # the server hashes alike
            versions.append(header)
        share = versions.count("2")
        assert binomtest(share, 1500, 0.10).pvalue > 0.001, share
        # sticky: one unit, one version, every time
        for unit in ("alice", "bob", "carol"):
            seen = {predict(client, unit).headers["lepton-model-version"] for _ in range(15)}
            assert len(seen) == 1
        # without a unit id: the request id, else a fresh one per request; both versions show
        seen = {predict(client).headers["lepton-model-version"] for _ in range(200)}
        assert seen == {"1", "2"}
        # an explicit version bypasses the experiment
        reply = client.post("/v2/models/iris/versions/2/infer", json={"inputs": [
            {"name": app.table.models["iris"]["2"].runner.inputs[0].name, "shape": [1, 4],
             "datatype": "FP32", "data": ROW["inputs"][0]}]})
        assert reply.json()["model_version"] == "2"
        metrics = client.get("/metrics").text
        assert 'lepton_requests_total{code="200",model="iris",route="predict",version="2"}' \
            in metrics
        assert 'version="1"' in metrics
        live = client.get("/v1/traffic").json()["iris"]
        assert [a["arm"] for a in live["arms"]] == ["production", "candidate"]
        app.predlog.flush()
    logged = _traffic.assignments(store, "iris")
    assert logged["candidate"] >= share and sum(logged.values()) == 1500 + 45 + 200


def _arm(name: str, weight: float):
    from lepton.serve.traffic import Arm

    return Arm(name, None, weight, [])


def test_a_live_change_is_picked_up_within_a_second_and_no_request_fails(registry_store):
    from lepton.serve.experiment import set_experiment

    store = registry_store
    clear(store)
    set_experiment(store, "iris", split="production=100,candidate=0")
    failures, answers, stop = [], [], threading.Event()
    with serving(store, "iris@production", "iris@candidate") as (_, url):
        def load() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                i = 0
                while not stop.is_set():
                    reply = predict(client, f"u{i}")
                    i += 1
                    if reply.status_code != 200:
                        failures.append(reply.status_code)
                    else:
                        answers.append((time.monotonic(), reply.headers["lepton-model-version"]))

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        changed = time.monotonic()
        set_experiment(store, "iris", split="production=0,candidate=100")
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join()
    assert not failures
    first_new = min(t for t, v in answers if v == "2")
    last_old = max(t for t, v in answers if v == "1")
    assert all(v == "1" for t, v in answers if t < changed)
    print(f"picked up {first_new - changed:.3f} s after the change; "
          f"last old answer {last_old - changed:.3f} s after")
    assert last_old - changed < 1.0  # the poll runs every 0.25 s
    assert any(t > last_old for t, _ in answers)


def test_bad_input_is_one_line_each(registry_store, capsys):
    from lepton.cli import main
    from lepton.serve.experiment import build_spec, set_experiment
    from lepton.serve.traffic import parse_split

    store = registry_store
    clear(store)
    with pytest.raises(ConfigError, match="sum to 100"):
        parse_split("production=90,candidate=20")
    for bad in ("production=-10,candidate=110", "production=x", "a/b=100", ""):
        with pytest.raises(ConfigError):
            parse_split(bad)
    with pytest.raises(NotFoundError, match="no alias 'nope'"):
        set_experiment(store, "iris", split="production=50,nope=50")
    with pytest.raises(NotFoundError, match="no version 9"):
        set_experiment(store, "iris", split="production=50,9=50")
    with pytest.raises(ConfigError, match="steps"):
        build_spec(canary="candidate", steps=[50, 25, 100])
    set_experiment(store, "iris", split="production=50,candidate=50")
    with pytest.raises(ConflictError, match="already has an active experiment"):
        set_experiment(store, "iris", name="other", split="production=50,candidate=50")
    # the CLI: one line on stderr, exit 2
    assert main(["traffic", "set", "iris", "--split", "production=70,candidate=20"]) == 2
    assert main(["traffic", "show", "iris", "--url", "http://127.0.0.1:9"]) == 2
    assert main(["traffic", "resume", "iris"]) == 2  # running: nothing to resume
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3, err
    assert "sum to 100" in err[0] and "Cannot reach" in err[1] and "paused" in err[2]


def test_the_cli_sets_shows_pauses_resumes_and_aborts(registry_store, capsys):
    from lepton.cli import main

    store = registry_store
    clear(store)
    with serving(store, "iris@production", "iris@candidate") as (_, url):
        assert main(["traffic", "set", "iris", "--split", "production=80,candidate=20",
                     "--url", url]) == 0
        out = capsys.readouterr().out
        assert "revision 1" in out and "routes by it" in out
        with httpx.Client(base_url=url) as client:
            for i in range(50):
                predict(client, f"v{i}")
        assert main(["traffic", "pause", "iris", "--url", url]) == 0
        assert main(["traffic", "resume", "iris"]) == 0
        assert main(["traffic", "show", "iris", "--url", url]) == 0
        out = capsys.readouterr().out
        assert "running, revision 3" in out and "live candidate" in out
        assert main(["traffic", "abort", "iris", "--url", url]) == 0
        with httpx.Client(base_url=url) as client:
            assert {predict(client, f"w{i}").headers["lepton-model-version"]
                    for i in range(30)} == {"1"}
    with pytest.raises(LeptonError):
        from lepton.store import _traffic

        _traffic.set_state(store, "iris", "paused", allowed=("running",))
