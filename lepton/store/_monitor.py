"""The store's side of monitoring and retraining, kept out of ``_store.py``: the prediction
log read window by window (with feedback joined), served-traffic sketches, drift reports,
retraining decisions, the count of feedback for unknown predictions, and the retention sweep.

Functions take an open ``Store``; every write is one committed transaction (``store.write``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.engine import Connection

from lepton.errors import NotFoundError
from lepton.store import _schema as s
from lepton.store._json import dumps, loads


def window_rows(store: Any, model: str, *, version: int | None = None,
                since: float | None = None, until: float | None = None,
                decrypt: Callable[[str, str], Any] | None = None) -> Iterator[dict[str, Any]]:
    """Logged predictions of ``model`` (oldest first) with their feedback label, if any;
    streamed. ``decrypt`` opens input samples written encrypted."""
    p, f = s.predictions, s.feedback
    query = (select(p.c.id, p.c.version, p.c.created_at, p.c.latency_ms, p.c.outputs,
                    p.c.input_digest, p.c.input_sample, f.c.label)
             .outerjoin(f, f.c.prediction_id == p.c.id)
             .where(p.c.model == model).order_by(p.c.created_at, p.c.id))
    if version is not None:
        query = query.where(p.c.version == version)
    if since is not None:
        query = query.where(p.c.created_at > since)
    if until is not None:
        query = query.where(p.c.created_at <= until)
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=2000).execute(query)
        seen: set[str] = set()
        for row in result:
            if row.id in seen:  # several feedback records on one prediction: the first
                continue
            seen.add(row.id)
            sample = row.input_sample
            if sample is not None:
                sample = loads(sample)
                if decrypt is not None and isinstance(sample, str):
                    sample = decrypt(sample, f"{model}/{row.id}")
            yield {"id": row.id, "version": row.version, "created_at": row.created_at,
                   "latency_ms": row.latency_ms, "outputs": loads(row.outputs),
                   "input_digest": row.input_digest, "input_sample": sample,
                   "label": None if row.label is None else loads(row.label)}


# -- served-traffic sketches ---------------------------------------------------------------
def write_sketches(store: Any, rows: list[dict[str, Any]]) -> int:
    """Append per-window sketches: ``model, version, window_start, window_end, requests,
    errors, sketch`` (JSON-able)."""
    records = [{**r, "sketch": dumps(r["sketch"])} for r in rows]
    if not records:
        return 0
    store.write(lambda conn: conn.execute(s.prediction_sketches.insert(), records))
    return len(records)


def read_sketches(store: Any, model: str, *, version: int | None = None,
                  since: float | None = None, until: float | None = None) -> list[dict]:
    t = s.prediction_sketches
    query = select(t).where(t.c.model == model).order_by(t.c.window_end, t.c.id)
    if version is not None:
        query = query.where(t.c.version == version)
    if since is not None:
        query = query.where(t.c.window_end > since)
    if until is not None:
        query = query.where(t.c.window_end <= until)
    rows = store.read(lambda conn: conn.execute(query).all())
    return [{**dict(r._mapping), "sketch": loads(r.sketch)} for r in rows]


# -- drift reports -------------------------------------------------------------------------
def save_report(store: Any, report: dict[str, Any]) -> str:
    """Store one window's report and its per-feature scores; returns the report id."""
    report_id = uuid.uuid4().hex
    window = report.get("window") or {}
    features = (report.get("drift") or {}).get("features") or []
    scores = {}
    prediction = report.get("prediction_drift") or {}
    for f in [*features, *([prediction] if prediction.get("method") else [])]:
        if f.get("method"):
            scores[(f["feature"][:256], f["method"])] = {
                "report_id": report_id, "feature": f["feature"][:256], "method": f["method"],
                "score": f.get("score"), "threshold": f.get("threshold"),
                "drifted": int(bool(f.get("drifted")))}

    def tx(conn: Connection) -> None:
        conn.execute(s.monitor_reports.insert().values(
            id=report_id, model=report["model"], version=report.get("version"),
            created_at=time.time(), window_start=window.get("start"),
            window_end=window.get("end"), rows=int(window.get("rows", 0)),
            drifted=sum(1 for f in features if f.get("drifted")), report=dumps(report)))
        if scores:
            conn.execute(s.drift_scores.insert(), list(scores.values()))
    store.write(tx)
    return report_id


def list_reports(store: Any, model: str, limit: int = 100) -> list[dict[str, Any]]:
    t = s.monitor_reports
    query = select(t).where(t.c.model == model).order_by(t.c.created_at.desc()).limit(limit)
    rows = store.read(lambda conn: conn.execute(query).all())
    return [{**dict(r._mapping), "report": loads(r.report)} for r in rows]


# -- retraining decisions ------------------------------------------------------------------
def save_decision(store: Any, record: dict[str, Any]) -> str:
    decision_id = uuid.uuid4().hex
    row = {"id": decision_id, "model": record["model"],
           "champion_version": record.get("champion_version"),
           "challenger_version": record.get("challenger_version"), "created_at": time.time(),
           "trigger": str(record.get("trigger", "manual"))[:32],
           "promoted": int(bool(record.get("promoted"))), "reason": record.get("reason", ""),
           "record": dumps({**record, "id": decision_id})}
    store.write(lambda conn: conn.execute(s.retrain_decisions.insert().values(row)))
    return decision_id


def list_decisions(store: Any, model: str, *, since: float | None = None) -> list[dict]:
    t = s.retrain_decisions
    query = select(t).where(t.c.model == model).order_by(t.c.created_at, t.c.id)
    if since is not None:
        query = query.where(t.c.created_at > since)
    rows = store.read(lambda conn: conn.execute(query).all())
    return [loads(r.record) | {"created_at": r.created_at} for r in rows]


# -- feedback naming no prediction -----------------------------------------------------------
def add_feedback_counted(store: Any, prediction_id: str, **kwargs: Any) -> dict[str, Any] | None:
    """``store.add_feedback``, but feedback for an unknown prediction id is counted (for the
    monitor's report) and answered with None instead of raising."""
    try:
        return store.add_feedback(prediction_id, **kwargs)
    except NotFoundError:
        store.write(lambda conn: conn.execute(s.feedback_unknown.insert().values(
            prediction_id=str(prediction_id)[:128], created_at=time.time())))
        return None


def count_unknown_feedback(store: Any, since: float | None = None,
                           until: float | None = None) -> int:
    t = s.feedback_unknown
    query = select(func.count()).select_from(t)
    if since is not None:
        query = query.where(t.c.created_at > since)
    if until is not None:
        query = query.where(t.c.created_at <= until)
    return store.read(lambda conn: conn.execute(query).scalar_one())


# -- retention ---------------------------------------------------------------------------------
def expired_rows(store: Any, before: float, limit: int = 50_000) -> list[dict[str, Any]]:
    """Logged predictions older than ``before`` that carry no feedback (what a sweep removes)."""
    p, f = s.predictions, s.feedback
    query = (select(p.c.id, p.c.model, p.c.version, p.c.created_at, p.c.outputs,
                    p.c.input_sample)
             .where(p.c.created_at < before, ~exists().where(f.c.prediction_id == p.c.id))
             .order_by(p.c.created_at).limit(limit))
    rows = store.read(lambda conn: conn.execute(query).all())
    return [{**dict(r._mapping), "outputs": loads(r.outputs),
             "input_sample": None if r.input_sample is None else loads(r.input_sample)}
            for r in rows]


def delete_predictions(store: Any, ids: list[str]) -> int:
    """Remove these prediction rows unless feedback arrived for them meanwhile."""
    p, f = s.predictions, s.feedback
    total = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        stmt = delete(p).where(and_(p.c.id.in_(chunk),
                                    ~exists().where(f.c.prediction_id == p.c.id)))
        total += store.write(lambda conn, stmt=stmt: conn.execute(stmt).rowcount)
    return total


# -- what the server exposes as gauges -----------------------------------------------------
def latest_scores(store: Any, model: str) -> dict[str, Any] | None:
    """The newest stored report of ``model``: its version, per-feature drift scores
    (``feature, method, score``) and the realised feedback accuracy (None without labels).
    One indexed read of one report: cheap enough to poll."""
    t, d = s.monitor_reports, s.drift_scores
    row = store.read(lambda conn: conn.execute(
        select(t.c.id, t.c.version, t.c.report).where(t.c.model == model)
        .order_by(t.c.created_at.desc()).limit(1)).first())
    if row is None:
        return None
    scores = store.read(lambda conn: conn.execute(
        select(d.c.feature, d.c.method, d.c.score).where(d.c.report_id == row.id)).all())
    quality = loads(row.report).get("quality") or {}
    return {"version": row.version, "accuracy": quality.get("accuracy"),
            "scores": [(r.feature, r.method, r.score) for r in scores if r.score is not None]}
