"""The canary in a real server: one that raises errors and one that answers wrongly on feedback
are both rolled back automatically while every request to the stable share succeeds; a good
one (no labels: judged on agreement with the champion) is stepped up and promoted by moving
the alias. Every decision is stored with its evidence and shown by `lepton traffic show`."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.serve.test_traffic import clear, predict, registry_store, serving  # noqa: F401

FAST = {"step_s": 0.3, "min_requests": 15, "min_labels": 10}


def drive(url: str, until, *, label_for=None, limit_s: float = 30.0) -> list[httpx.Response]:
    """Requests from distinct units until ``until()``; with ``label_for``, feedback on each."""
    replies, deadline, i = [], time.monotonic() + limit_s, 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while not until() and time.monotonic() < deadline:
            reply = predict(client, f"unit-{i}")
            i += 1
            replies.append(reply)
            if label_for is not None and reply.status_code == 200:
                body = reply.json()["predictions"][0]
                label = label_for(reply.headers["lepton-model-version"], body["label"])
                client.post("/v1/feedback", json={"id": body["id"], "label": label})
            if i % 20 == 0:
                time.sleep(0.02)
    return replies


def state(store) -> dict:
    from lepton.store import _traffic

    return _traffic.current(store, "iris")


def test_a_canary_that_raises_is_rolled_back_and_the_stable_share_never_fails(
        registry_store):  # noqa: F811
    from lepton.serve.experiment import set_experiment
    from lepton.store import _traffic

    store = registry_store
    clear(store)
    set_experiment(store, "iris", canary="candidate", steps=[25, 100], **FAST)
    with serving(store, "iris@production", "iris@candidate") as (app, url):
        def broken(items):
            raise RuntimeError("the canary is broken")

        app.table.models["iris"]["2"].batcher.fn = broken
        replies = drive(url, lambda: state(store)["state"] != "running")
        exp = state(store)
        assert exp["state"] == "rolled_back" and exp["spec"]["arms"]["candidate"] == 0
        stable = [r for r in replies if r.headers.get("lepton-model-version") == "1"]
        assert stable and all(r.status_code == 200 for r in stable)
        assert any(r.status_code == 500 for r in replies)
        time.sleep(0.1)
        after = drive(url, lambda: False, limit_s=0.5)
        assert after and all(r.status_code == 200 and
                             r.headers["lepton-model-version"] == "1" for r in after)
    decision = _traffic.decisions(store, exp["id"])[-1]
    assert decision["action"] == "rollback" and "error rate" in decision["reason"]
    assert decision["evidence"]["canary"]["errors"] > 0
    from lepton.registry import Registry

    assert Registry(store).aliases("iris")["production"] == 1  # the alias did not move


def test_a_canary_wrong_on_feedback_is_rolled_back_by_the_sequential_test(
        registry_store, capsys):  # noqa: F811
    from lepton.cli import main
    from lepton.serve.experiment import set_experiment

    store = registry_store
    clear(store)
    set_experiment(store, "iris", canary="candidate", steps=[50, 100], **FAST)
    with serving(store, "iris@production", "iris@candidate") as (_, url):
        def label_for(version: str, predicted: str) -> str:  # the champion is right
            if version == "1":
                return predicted
            return next(n for n in ("setosa", "versicolor", "virginica") if n != predicted)

        replies = drive(url, lambda: state(store)["state"] != "running", label_for=label_for)
        assert all(r.status_code == 200 for r in replies)
    exp = state(store)
    assert exp["state"] == "rolled_back"
    assert main(["traffic", "show", "iris"]) == 0
    out = capsys.readouterr().out
    assert "rollback" in out and "sequential test on accuracy" in out


def test_a_good_canary_is_stepped_up_and_promoted(registry_store):  # noqa: F811
    from lepton.registry import Registry
    from lepton.serve.experiment import set_experiment
    from lepton.store import _traffic

    store = registry_store
    clear(store)
    registry = Registry(store)
    set_experiment(store, "iris", canary="same", steps=[30, 100], **FAST)
    with serving(store, "iris@production", "iris@same") as (_, url):
        replies = drive(url, lambda: state(store)["state"] != "running")
        assert all(r.status_code == 200 for r in replies)
        exp = state(store)
        assert exp["state"] == "promoted", _traffic.decisions(store, exp["id"])
        after = drive(url, lambda: False, limit_s=0.3)
        assert {r.headers["lepton-model-version"] for r in after} == {"3"}
    actions = [d["action"] for d in _traffic.decisions(store, exp["id"])]
    assert actions[-2:] == ["advance", "promote"]
    last = _traffic.decisions(store, exp["id"])[-1]["evidence"]["quality"]
    assert last["mode"] == "agreement" and last["verdict"] == "not_worse"
    assert registry.aliases("iris")["production"] == 3
    registry.promote("iris", 1, "production")  # leave the module's registry as it was


@pytest.mark.parametrize(("k", "n", "verdict"), [(5, 30, "worse"), (30, 30, "not_worse"),
                                                  (9, 10, "undecided")])
def test_the_sprt_on_counts(k, n, verdict):
    from lepton.serve.canary import sprt

    assert sprt(k, n, 0.95, 0.90, 0.05, 0.2)["verdict"] == verdict
