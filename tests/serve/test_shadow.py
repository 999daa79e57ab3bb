"""The shadow in a real server: requests mirrored to another version, compared (agreement,
score difference, latency) and never returned; a shadow that sleeps or raises changes neither
the client's latency (beyond noise) nor its answers."""

from __future__ import annotations

import statistics
import time

import httpx

from tests.serve.test_traffic import clear, predict, registry_store, serving  # noqa: F401


def timed(client: httpx.Client, n: int) -> tuple[list[float], set]:
    latencies, answers = [], set()
    for i in range(n):
        started = time.perf_counter()
        reply = predict(client, f"s{i}")
        latencies.append(time.perf_counter() - started)
        assert reply.status_code == 200
        assert reply.headers["lepton-model-version"] == "1"  # the shadow never answers
        answers.add(reply.json()["predictions"][0]["label"])
    return latencies, answers


def wait_for(client: httpx.Client, check, limit_s: float = 10.0) -> dict:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        live = client.get("/v1/traffic").json().get("iris") or {}
        if check(live):
            return live
        time.sleep(0.05)
    raise AssertionError(f"not seen: {live}")


def test_a_slow_or_failing_shadow_never_changes_latency_or_answers(registry_store):  # noqa: F811
    from lepton.serve.experiment import set_experiment

    store = registry_store
    clear(store)
    with serving(store, "iris@production", "iris@same", "iris@candidate") as (app, url), \
            httpx.Client(base_url=url, timeout=30) as client:
        same = app.table.models["iris"]["3"]
        real = same.batcher.fn

        def slow(items):
            time.sleep(0.05)
            return real(items)

        def failing(items):
            raise RuntimeError("the shadow is broken")

        same.batcher.fn = slow
        rounds = {"none": [], "slow": [], "failing": []}
        answers = {}
        for _ in range(2):  # interleaved: the machine is shared
            for mode in rounds:
                clear(store)
                if mode == "none":
                    wait_for(client, lambda live: not live)
                else:
                    same.batcher.fn = slow if mode == "slow" else failing
                    set_experiment(store, "iris", shadow="same", champion="production")
                    wait_for(client, lambda live: bool(live.get("shadow")))
                latencies, seen = timed(client, 150)
                rounds[mode] += latencies
                answers.setdefault(mode, set()).update(seen)
                if mode != "none":
                    live = client.get("/v1/traffic").json()["iris"]["shadow"]
                    if mode == "slow":
                        assert live["compared"] > 0 and live["agreement"] == 1.0
                        assert live["mean_score_diff"] < 1e-5 and live["p50_ms"] >= 50
                    else:
                        assert live["errors"] > 0 and live["compared"] == 0
        metrics = client.get("/metrics").text
    assert answers["slow"] == answers["none"] == answers["failing"]
    base = statistics.median(rounds["none"])
    for mode in ("slow", "failing"):
        median = statistics.median(rounds[mode])
        print(f"median latency {mode}: {median * 1000:.2f} ms (no shadow {base * 1000:.2f} ms)")
        assert median < base * 1.5 + 0.002  # a sleeping shadow would add 50 ms
    assert 'lepton_shadow_rows_total{model="iris",outcome="agree",version="3"}' in metrics
    assert 'lepton_shadow_rows_total{model="iris",outcome="error",version="3"}' in metrics


def test_compare_tensors_and_records():
    import numpy as np

    from lepton.serve.shadow import compare

    a = {"out": np.array([[0.9, 0.1], [0.4, 0.6]])}
    b = {"out": np.array([[0.7, 0.3], [0.6, 0.4]])}
    agree, rows, diff = compare(a, b)
    assert (agree, rows) == (1, 2) and abs(diff - 0.4) < 1e-9
    x = [{"label": "a", "probabilities": {"a": 0.8, "b": 0.2}}]
    y = [{"label": "b", "probabilities": {"a": 0.3, "b": 0.7}}]
    assert compare(x, y) == (0, 1, 0.5)
