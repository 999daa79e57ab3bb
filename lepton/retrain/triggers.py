"""Whether a retraining trigger holds now, read from the store, and the evidence for it.

A trigger is a claim ("the inputs drifted", "labels came back", "it is time"); retraining on
a claim nobody checked is how a loop retrains forever on noise. Each one is checked here
against what the store holds about the *current* champion, and the finding goes into the
decision record whether it holds or not:

- ``drift``: a stored monitor report of the champion's version shows input, prediction or
  embedding drift (``lepton monitor`` stores one per window);
- ``feedback``: at least ``min_labels`` labels came back for the champion's predictions
  (since ``since``), or its accuracy on feedback fell ``max_accuracy_drop`` points below its
  validation accuracy;
- ``schedule``: ``every`` has passed since the last decision (or the version's registration);
- ``manual``: always holds (a person asked).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lepton.errors import ConfigError
from lepton.serve.retention import parse_duration

TRIGGERS = ("manual", "drift", "feedback", "schedule")


def _drift(store: Any, name: str, version: int) -> tuple[str | None, dict[str, Any]]:
    from lepton.store._monitor import list_reports

    for row in list_reports(store, name, limit=200):  # newest first
        report = row["report"]
        if row.get("version") != version or report.get("status", "ok") != "ok":
            continue
        drifted = list((report.get("drift") or {}).get("drifted") or [])
        if (report.get("prediction_drift") or {}).get("drifted"):
            drifted.append("predictions")
        if drifted:
            return None, {"report": row["id"], "reported_at": row["created_at"],
                          "drifted": drifted, "window_rows": row.get("rows")}
    return (f"no stored monitor report of version {version} shows drift (run lepton monitor "
            "first, or use --trigger manual)"), {}


def _accuracy(champion: dict[str, Any]) -> float | None:
    metrics = champion.get("metrics") or {}
    for key in ("accuracy", "val_accuracy", "test_accuracy"):
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def _feedback(store: Any, name: str, champion: dict[str, Any], since: float | None,
              min_labels: int, max_drop: float) -> tuple[str | None, dict[str, Any]]:
    from lepton.store._monitor import list_reports, window_rows

    version = int(champion["version"])
    labels = sum(1 for row in window_rows(store, name, version=version, since=since)
                 if row["label"] is not None)
    evidence: dict[str, Any] = {"labels": labels, "min_labels": min_labels}
    reports = [r for r in list_reports(store, name, limit=50) if r.get("version") == version]
    realised = next(((r["report"].get("quality") or {}).get("accuracy") for r in reports
                     if (r["report"].get("quality") or {}).get("accuracy") is not None), None)
    expected = _accuracy(champion)
    if realised is not None and expected is not None:
        evidence.update(feedback_accuracy=realised, validation_accuracy=expected,
                        max_accuracy_drop=max_drop)
        if 100 * (expected - realised) >= max_drop:
            return None, evidence
    if labels >= min_labels:
        return None, evidence
    return (f"{labels} feedback labels for version {version} (at least {min_labels}) and no "
            f"accuracy drop of {max_drop:g} points"), evidence


def _schedule(store: Any, name: str, champion: dict[str, Any], every: str, now: float
              ) -> tuple[str | None, dict[str, Any]]:
    from lepton.store._monitor import list_decisions

    period = parse_duration(every)
    if period is None or period <= 0:
        raise ConfigError("Invalid --every", expected="a duration such as 7d or 12h",
                          received=repr(every))
    decisions = list_decisions(store, name)
    created = champion.get("created_at")
    last = (decisions[-1]["created_at"] if decisions
            else datetime.fromisoformat(created).timestamp() if isinstance(created, str)
            else None)
    evidence = {"last": last, "every_s": period}
    if last is None or now - last >= period:
        return None, evidence
    return f"{now - last:.0f} s since the last decision (every {every})", evidence


def check_trigger(store: Any, champion: dict[str, Any], trigger: str, *, now: float,
                  since: float | None = None, min_labels: int = 200,
                  max_accuracy_drop: float = 2.0, every: str = "7d"
                  ) -> tuple[str | None, dict[str, Any]]:
    """(why it does not hold, or None; the evidence found) for ``trigger`` on ``champion``
    (a registry record)."""
    if trigger not in TRIGGERS:
        raise ConfigError("Unknown retraining trigger", expected=" | ".join(TRIGGERS),
                          received=repr(trigger))
    name = champion["name"]
    if trigger == "drift":
        return _drift(store, name, int(champion["version"]))
    if trigger == "feedback":
        return _feedback(store, name, champion, since, min_labels, max_accuracy_drop)
    if trigger == "schedule":
        return _schedule(store, name, champion, every, now)
    return None, {}
