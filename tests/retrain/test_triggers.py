"""Retraining triggers are checked against the store, not taken on trust: a drift trigger
without a drifted report, a feedback trigger without enough labels and a schedule that is not
due each write a decision that says why and train nothing; when the evidence is there it is
recorded with the decision."""

from __future__ import annotations

import time

import pytest

from lepton.errors import ConfigError
from tests.monitor.conftest import log_records
from tests.retrain.test_retrain import _feedback, _original, _production, champion  # noqa: F401


def _check(store, record, trigger, **kwargs):
    from lepton.retrain.triggers import check_trigger

    return check_trigger(store, record, trigger, now=time.time(), **kwargs)


def test_drift_needs_a_stored_report_that_drifted(champion, store):  # noqa: F811
    from lepton.monitor import monitor

    _, record = champion
    why, _ = _check(store, record, "drift")
    assert why is not None and "no stored monitor report" in why
    now = time.time()
    log_records(store, record, _original(300, 5).drop(columns=["y"]), start=now - 100,
                prefix="c", step=0.01)
    monitor("shift", store=store)  # a clean window: stored, no drift
    assert _check(store, record, "drift")[0] is not None
    log_records(store, record, _production(300, 6).drop(columns=["y"]), start=now - 50,
                prefix="s", step=0.01)
    monitor("shift", store=store, since=now - 60)  # the shifted window alone
    why, evidence = _check(store, record, "drift")
    assert why is None and "x2" in evidence["drifted"] and evidence["report"]


def test_feedback_needs_enough_labels(champion, store):  # noqa: F811
    _, record = champion
    prod = _production(150, 2)
    _feedback(store, record, prod, prod["y"], "f")
    why, evidence = _check(store, record, "feedback", min_labels=200)
    assert why is not None and evidence["labels"] == 150
    why, evidence = _check(store, record, "feedback", min_labels=100)
    assert why is None and evidence["labels"] == 150


def test_schedule_and_unknown_triggers(champion, store):  # noqa: F811
    _, record = champion
    from lepton.retrain.triggers import check_trigger

    later = time.time() + 5  # 5 s after registration
    assert check_trigger(store, record, "schedule", now=later, every="1s")[0] is None
    why, evidence = _check(store, record, "schedule", every="7d")
    assert why is not None and evidence["every_s"] == 7 * 86400
    with pytest.raises(ConfigError, match="Invalid --every"):
        _check(store, record, "schedule", every="often")
    with pytest.raises(ConfigError, match="Unknown retraining trigger"):
        _check(store, record, "cron")
    assert _check(store, record, "manual") == (None, {})


def test_a_trigger_that_does_not_hold_trains_nothing_and_says_why(champion, store):  # noqa: F811
    from lepton.registry import Registry
    from lepton.retrain import retrain
    from lepton.store._monitor import list_decisions

    csv, record = champion
    decision = retrain("shift", data=csv, store=store, trigger="drift")
    assert not decision["promoted"] and "trigger 'drift' does not hold" in decision["reason"]
    assert "challenger_version" not in decision or decision["challenger_version"] is None
    assert list_decisions(store, "shift")[-1]["reason"] == decision["reason"]
    assert [v["version"] for v in Registry(store).list_versions("shift")] == [record["version"]]
