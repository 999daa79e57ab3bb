"""The store's Python API on both backends: runs, metrics, prediction log, feedback."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lepton.errors import ConfigError, ConflictError, LeptonTypeError, NotFoundError
from lepton.store import Store


def test_open_uses_workspace_and_env(store, workspace, db_url):
    assert store.workspace == workspace.resolve()
    assert store.dialect == db_url.split(":")[0].split("+")[0]
    assert store.integrity_check() == "ok"


def test_sqlite_default_is_wal_full_with_busy_timeout(tmp_path, monkeypatch):
    monkeypatch.delenv("LEPTON_DB_URL", raising=False)
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    with Store.open() as store:
        assert store.url == f"sqlite:///{tmp_path / 'home' / 'lepton.db'}"
        with store.engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 2  # FULL
            assert pragma("busy_timeout") >= 10_000
            assert pragma("foreign_keys") == 1


def test_workspace_defaults_to_dot_lepton(tmp_path, monkeypatch):
    monkeypatch.delenv("LEPTON_DB_URL", raising=False)
    monkeypatch.delenv("LEPTON_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    with Store.open() as store:
        assert store.workspace == (tmp_path / ".lepton").resolve()
        assert (tmp_path / ".lepton" / "lepton.db").is_file()


def test_reopen_keeps_data(workspace, store):
    store.log_predictions([{"id": "a", "model": "m", "outputs": [1]}])
    with Store.open() as again:
        assert again.get_prediction("a")["outputs"] == [1]


def test_runs_params_metrics_status_cost(store):
    run = store.start_run("train-fraud", {"lr": 1e-3, "layers": [64, 2]}, tags={"data": "v1"})
    for step, loss in enumerate([0.9, 0.5, 0.3]):
        store.log_metrics(run, {"loss": loss, "accuracy": 1 - loss}, step=step)
    store.log_metrics(run, {"loss": 0.25}, step=2)  # a resumed run rewrites its last step
    store.end_run(run, "finished", cost_usd=0.0125)
    got = store.get_run(run)
    assert got["params"] == {"lr": 1e-3, "layers": [64, 2]}
    assert got["tags"] == {"data": "v1"}
    assert got["status"] == "finished" and got["cost_usd"] == pytest.approx(0.0125)
    assert got["metrics"]["loss"] == [(0, 0.9), (1, 0.5), (2, 0.25)]
    assert [s for s, _ in got["metrics"]["accuracy"]] == [0, 1, 2]
    assert got["ended_at"] >= got["started_at"]
    assert [r["id"] for r in store.list_runs()] == [run]


def test_resuming_a_run_keeps_one_record(store):
    run = store.start_run("t", {"epochs": 3})
    store.log_metrics(run, {"loss": 1.0}, step=0)
    store.end_run(run, "killed")
    assert store.start_run("t", {"epochs": 3}, run_id=run) == run
    assert store.get_run(run)["status"] == "running"
    assert store.get_run(run)["metrics"]["loss"] == [(0, 1.0)]
    assert len(store.list_runs()) == 1


def test_run_errors_are_clear(store):
    with pytest.raises(NotFoundError, match="No such run"):
        store.log_metrics("nope", {"loss": 1.0})
    run = store.start_run("t")
    with pytest.raises(ConfigError, match="finished | failed | killed"):
        store.end_run(run, "done")
    with pytest.raises(LeptonTypeError, match="Metric 'loss' is not a number"):
        store.log_metrics(run, {"loss": "high"})
    with pytest.raises(ConfigError, match="step"):
        store.log_metrics(run, {"loss": 1.0}, step=-1)


def test_prediction_log_is_batched_and_idempotent(store):
    rows = [{"id": f"p{i}", "model": "fraud", "version": 2, "outputs": np.array([0.1, 0.9]),
             "latency_ms": 1.5, "input_digest": "sha256:ab", "input_sample": {"amount": i}}
            for i in range(100)]
    assert store.log_predictions(rows) == 100
    assert store.log_predictions(rows[50:] + [{**rows[0], "id": "p100"}]) == 1
    assert store.count_predictions() == 101
    assert store.count_predictions("fraud") == 101 and store.count_predictions("other") == 0
    got = store.get_prediction("p7")
    assert got["outputs"] == pytest.approx([0.1, 0.9])
    assert got["input_sample"] == {"amount": 7} and got["version"] == 2
    listed = store.list_predictions("fraud", limit=5)
    assert len(listed) == 5 and all(p["model"] == "fraud" for p in listed)
    assert store.log_predictions([]) == 0


@pytest.mark.parametrize("sqlite_version", [(3, 40, 1), (3, 31, 1)])
def test_sqlite_prediction_log_stores_the_same_rows_with_and_without_json(
        tmp_path, monkeypatch, sqlite_version):
    """SQLite 3.38+ unpacks a JSON parameter in one statement; older ones step per row."""
    import sqlite3
    import types

    from lepton.store import _store

    monkeypatch.setattr(_store, "sqlite3", types.SimpleNamespace(
        sqlite_version_info=sqlite_version))
    store = Store.open(f"sqlite:///{tmp_path / 'log.db'}", workspace=tmp_path)
    rows = [{"id": "a", "model": "m", "version": 3, "outputs": {"p": np.float32(0.5)},
             "latency_ms": 2.0, "input_digest": "d", "input_sample": [1, "x"],
             "created_at": 1700000000.5},
            {"id": "b", "model": "m", "outputs": ["it's \"quoted\"\n"]}]
    assert store.log_predictions(rows) == 2 and store.log_predictions(rows) == 0
    store.close()
    with sqlite3.connect(tmp_path / "log.db") as db:
        stored = db.execute("SELECT id, model, version, typeof(version), created_at, "
                            "typeof(created_at), latency_ms, outputs, input_digest, "
                            "input_sample FROM predictions ORDER BY id").fetchall()
    assert stored[0] == ("a", "m", 3, "integer", 1700000000.5, "real", 2.0, '{"p":0.5}', "d",
                         '[1,"x"]')
    assert stored[1][:4] == ("b", "m", None, "null")
    assert stored[1][5] == "real" and stored[1][7] == '["it\'s \\"quoted\\"\\n"]'



def test_server_log_path_writes_pre_encoded_rows_on_every_backend(store):
    """The server hands the store rows it encoded itself; SQLite unpacks them in SQL,
    PostgreSQL (and SQLite before 3.38) decode them and insert row by row."""
    rows = (b'[["s1","mnist",2,1700000000.5,1.25,{"probs":[0.25,0.75]},"ab12",null],'
            b'["s2","mnist",null,1700000001.0,null,"seven","cd34",{"pixels":[0,1]}]]')
    assert store.log_prediction_json(rows) == 2
    assert store.log_prediction_json(rows) == 0  # replayed after a crash: nothing doubled
    first, second = store.get_prediction("s1"), store.get_prediction("s2")
    assert (first["version"], first["latency_ms"], first["created_at"]) == (2, 1.25,
                                                                          1700000000.5)
    assert first["outputs"] == {"probs": [0.25, 0.75]} and first["input_sample"] is None
    assert first["input_digest"] == "ab12" and second["version"] is None
    assert second["outputs"] == "seven" and second["input_sample"] == {"pixels": [0, 1]}

def test_prediction_log_rejects_bad_rows(store):
    with pytest.raises(ConfigError, match="lacks a field.*outputs"):
        store.log_predictions([{"id": "x", "model": "m"}])
    with pytest.raises(ConfigError, match="prediction id"):
        store.log_predictions([{"id": "", "model": "m", "outputs": 1}])
    with pytest.raises(ConfigError, match="prediction id"):
        store.log_predictions([{"id": "x" * 129, "model": "m", "outputs": 1}])
    assert store.count_predictions() == 0


def test_feedback_roundtrip_and_idempotency(store):
    store.log_predictions([{"id": "p1", "model": "fraud", "version": 1, "outputs": [0.2]},
                           {"id": "p2", "model": "churn", "outputs": [0.7]}])
    first = store.add_feedback("p1", label={"class": "fraud"})
    assert first["created"] and first["key"] == "p1" and first["label"] == {"class": "fraud"}
    again = store.add_feedback("p1", label={"class": "fraud"})
    assert not again["created"] and again["id"] == first["id"]
    rated = store.add_feedback("p2", rating=4.5, key="survey-17")
    assert rated["rating"] == 4.5
    with pytest.raises(ConflictError, match="idempotency key"):
        store.add_feedback("p1", label={"class": "ok"})
    assert store.count_feedback() == 2
    fraud = store.list_feedback("fraud")
    assert [(f["prediction_id"], f["label"], f["model"], f["version"]) for f in fraud] == \
        [("p1", {"class": "fraud"}, "fraud", 1)]
    assert fraud[0]["outputs"] == [0.2] and fraud[0]["time"].endswith("+00:00")
    assert [f["key"] for f in store.list_feedback()] == ["p1", "survey-17"]


def test_feedback_errors(store):
    with pytest.raises(NotFoundError, match="No prediction with this id"):
        store.add_feedback("ghost", label=1)
    store.log_predictions([{"id": "p", "model": "m", "outputs": 1}])
    with pytest.raises(ConfigError, match="label or a rating"):
        store.add_feedback("p")
    for bad in (math.nan, math.inf, "5", True):
        with pytest.raises(ConfigError, match="rating"):
            store.add_feedback("p", rating=bad)
    with pytest.raises(ConfigError, match="idempotency key"):
        store.add_feedback("p", label=1, key="")
    assert store.count_feedback() == 0


def test_bad_url_is_a_clear_error(monkeypatch):
    with pytest.raises(ConfigError, match="Unsupported database"):
        Store.open("mysql://u@h/db")
    with pytest.raises(ConfigError, match="Invalid database URL"):
        Store.open("not a url")


def test_nan_and_inf_metrics_survive(store):
    run = store.start_run("diverged")
    store.log_metrics(run, {"loss": float("nan"), "grad_norm": float("inf")}, step=3)
    got = store.get_run(run)["metrics"]
    assert math.isnan(got["loss"][0][1]) and got["grad_norm"] == [(3, math.inf)]


def _log_in_child(store, ids):
    assert store.engine.pool.checkedin() == 0  # the parent's connections were dropped
    store.log_predictions([{"id": i, "model": "m", "outputs": [0]} for i in ids])


def test_a_forked_child_gets_its_own_connections(store):
    import multiprocessing

    store.log_predictions([{"id": "parent-before", "model": "m", "outputs": [0]}])
    child = multiprocessing.get_context("fork").Process(target=_log_in_child,
                                                        args=(store, ["child-1", "child-2"]))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    store.log_predictions([{"id": "parent-after", "model": "m", "outputs": [0]}])
    assert store.count_predictions() == 4
    assert store.integrity_check() == "ok"
