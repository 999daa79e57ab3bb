"""The store's side of traffic experiments, kept out of ``_store.py``: the experiment per
model (A/B split, canary, shadow), its decisions with their evidence, each routed prediction's
assignment, and the feedback outcomes a canary is judged on.

An experiment row carries a ``revision`` that grows with every change; a server polls the
newest experiment of each model it serves and rebuilds its routing when the revision moves.
Changes by a server (a canary step, a rollback) are compare-and-set on that revision, so when
several workers decide at once exactly one decision is written. Only one experiment per model
is active (running or paused) at a time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from lepton.errors import ConflictError, NotFoundError
from lepton.store import _schema as s
from lepton.store._json import dumps, loads
from lepton.store._values import actor

ACTIVE = ("running", "paused")
KINDS = ("split", "canary", "shadow")


def _row(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["spec"] = loads(out["spec"])
    return out


def _active(conn: Connection, model: str) -> Any:
    t = s.traffic_experiments
    return conn.execute(select(t).where(t.c.model == model, t.c.state.in_(ACTIVE))
                        .order_by(t.c.created_at.desc()).limit(1)).first()


def put_experiment(store: Any, model: str, name: str, kind: str, spec: dict[str, Any]
                   ) -> dict[str, Any]:
    """Start experiment ``name`` on ``model``, or change it when it is the one active there.
    Another active experiment on the model is a conflict (one experiment per model)."""
    t = s.traffic_experiments

    def tx(conn: Connection) -> dict[str, Any]:
        now, who = time.time(), actor()
        found = _active(conn, model)
        if found is not None and found.name != name:
            raise ConflictError(f"Model '{model}' already has an active experiment",
                                expected="one experiment per model", received=found.name,
                                fix=f"lepton traffic abort {model}, or change '{found.name}' "
                                    f"with --name {found.name}")
        if found is not None:
            conn.execute(update(t).where(t.c.id == found.id).values(
                kind=kind, spec=dumps(spec), revision=found.revision + 1, updated_at=now,
                updated_by=who))
            exp_id = found.id
        else:
            exp_id = uuid.uuid4().hex
            conn.execute(t.insert().values(
                id=exp_id, name=name, model=model, kind=kind, state="running", revision=1,
                spec=dumps(spec), created_at=now, updated_at=now, updated_by=who))
        return _row(conn.execute(select(t).where(t.c.id == exp_id)).one())
    return store.write(tx)


def latest(store: Any, models: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The newest experiment of each model (any state), by model; one query."""
    t = s.traffic_experiments
    names = list(models)
    if not names:
        return {}
    rows = store.read(lambda conn: conn.execute(
        select(t).where(t.c.model.in_(names)).order_by(t.c.created_at)).all())
    return {row.model: _row(row) for row in rows}  # the newest wins


def current(store: Any, model: str) -> dict[str, Any]:
    """The model's newest experiment; NotFoundError when it never had one."""
    found = latest(store, [model]).get(model)
    if found is None:
        raise NotFoundError(f"Model '{model}' has no traffic experiment",
                            fix=f"lepton traffic set {model} --split A=90,B=10")
    return found


def compare_and_set(store: Any, exp_id: str, revision: int, *, state: str | None = None,
                    spec: dict[str, Any] | None = None, actor_name: str | None = None
                    ) -> dict[str, Any] | None:
    """Change the experiment if it is still at ``revision``; the new row, or None when
    someone else changed it first."""
    t = s.traffic_experiments
    values: dict[str, Any] = {"revision": revision + 1, "updated_at": time.time(),
                              "updated_by": actor_name or actor()}
    if state is not None:
        values["state"] = state
    if spec is not None:
        values["spec"] = dumps(spec)

    def tx(conn: Connection) -> dict[str, Any] | None:
        done = conn.execute(update(t).where(t.c.id == exp_id, t.c.revision == revision)
                            .values(**values)).rowcount
        if not done:
            return None
        return _row(conn.execute(select(t).where(t.c.id == exp_id)).one())
    return store.write(tx)


def set_state(store: Any, model: str, state: str, *, allowed: tuple[str, ...] = ACTIVE
              ) -> dict[str, Any]:
    """Pause, resume or abort the model's active experiment."""
    def tx(conn: Connection) -> tuple[str, int]:
        found = _active(conn, model)
        if found is None or found.state not in allowed:
            raise NotFoundError(f"Model '{model}' has no experiment that can be set {state}",
                                expected=f"an experiment that is {' or '.join(allowed)}",
                                received="none" if found is None else found.state,
                                fix=f"lepton traffic show {model}")
        return found.id, found.revision
    exp_id, revision = store.read(tx)
    done = compare_and_set(store, exp_id, revision, state=state)
    if done is None:
        raise ConflictError("The experiment changed while it was being set",
                            fix="run the command again")
    return done


def add_decision(store: Any, exp_id: str, action: str, reason: str,
                 evidence: dict[str, Any]) -> None:
    store.write(lambda conn: conn.execute(s.traffic_decisions.insert().values(
        experiment_id=exp_id, at=time.time(), action=action, reason=reason,
        evidence=dumps(evidence))))


def decisions(store: Any, exp_id: str) -> list[dict[str, Any]]:
    t = s.traffic_decisions
    rows = store.read(lambda conn: conn.execute(
        select(t).where(t.c.experiment_id == exp_id).order_by(t.c.at, t.c.id)).all())
    return [{**dict(r._mapping), "evidence": loads(r.evidence)} for r in rows]


def log_assignments(store: Any, rows: list[tuple[str, str, str, int]]) -> int:
    """(prediction id, experiment, arm, bucket) rows; an id already logged is skipped."""
    if not rows:
        return 0
    stmt = store.insert(s.traffic_assignments).on_conflict_do_nothing(
        index_elements=["prediction_id"])
    params = [{"prediction_id": r[0], "experiment": r[1], "arm": r[2], "bucket": r[3]}
              for r in rows]
    return store.write(lambda conn: conn.execute(stmt, params).rowcount)


def assignments(store: Any, experiment: str) -> dict[str, int]:
    """Logged predictions per arm of an experiment."""
    from sqlalchemy import func

    t = s.traffic_assignments
    rows = store.read(lambda conn: conn.execute(
        select(t.c.arm, func.count()).where(t.c.experiment == experiment)
        .group_by(t.c.arm)).all())
    return {arm: int(n) for arm, n in rows}


def feedback_outcomes(store: Any, model: str, version: int, since: float
                      ) -> list[tuple[Any, Any]]:
    """(outputs, label) of the version's predictions since ``since`` that have a label."""
    p, f = s.predictions, s.feedback
    query = (select(p.c.id, p.c.outputs, f.c.label).join(f, f.c.prediction_id == p.c.id)
             .where(p.c.model == model, p.c.version == version, p.c.created_at >= since,
                    f.c.label.is_not(None)))
    rows = store.read(lambda conn: conn.execute(query).all())
    seen: set[str] = set()
    out = []
    for row in rows:
        if row.id not in seen:
            seen.add(row.id)
            out.append((loads(row.outputs), loads(row.label)))
    return out
