"""Training runs and their metrics in the store: the part of ``Store`` that ``lepton train``
and ``lepton tune`` record into (a mixin: it needs the store's ``write``, ``read`` and
``insert``)."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from lepton.errors import ConfigError, LeptonTypeError, NotFoundError
from lepton.store import _schema as s
from lepton.store._json import dumps, loads
from lepton.store._values import actor, check_id

RUN_STATUSES = ("running", "finished", "failed", "killed")


class RunLog:
    """``start_run``, ``log_metrics``, ``end_run``, ``get_run``, ``list_runs``."""

    write: Callable[..., Any]
    read: Callable[..., Any]
    insert: Callable[..., Any]

    # -- runs and metrics --------------------------------------------------------------------
    def start_run(self, name: str, params: Mapping[str, Any] | None = None, *,
                  tags: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Record a new run (status ``running``) and return its id.

        Passing the ``run_id`` of an earlier run resumes it: its status goes back to running
        and its params are kept, so a restarted training run keeps one record.
        """
        if not isinstance(name, str) or not name:
            raise ConfigError("Invalid run name", expected="a non-empty string",
                              received=repr(name))
        row = {"id": run_id or uuid.uuid4().hex, "name": name, "status": "running",
               "params": dumps(dict(params or {})), "tags": dumps(dict(tags or {})),
               "started_at": time.time(), "ended_at": None, "cost_usd": None,
               "created_by": actor()}
        check_id(row["id"], "run id", 32)

        def tx(conn: Connection) -> None:
            stmt = self.insert(s.runs).values(row).on_conflict_do_update(
                index_elements=["id"], set_={"status": "running", "ended_at": None})
            conn.execute(stmt)
        self.write(tx)
        return row["id"]

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Record metric values at ``step``; logging a step again overwrites it (resumed runs)."""
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ConfigError("Invalid metric step", expected="an int >= 0", received=repr(step))
        now = time.time()
        rows = []
        for key, value in metrics.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise LeptonTypeError(f"Metric '{key}' is not a number",
                                      received=repr(value)[:80]) from None
            rows.append({"run_id": run_id, "key": str(key), "step": step,
                         "value": None if math.isnan(value) else value, "logged_at": now})
        if not rows:
            return

        def tx(conn: Connection) -> None:
            self._require_run(conn, run_id)
            stmt = self.insert(s.metrics)
            stmt = stmt.on_conflict_do_update(
                index_elements=["run_id", "key", "step"],
                set_={"value": stmt.excluded.value, "logged_at": stmt.excluded.logged_at})
            conn.execute(stmt, rows)
        self.write(tx)

    def end_run(self, run_id: str, status: str = "finished", *,
                cost_usd: float | None = None) -> None:
        """Close a run with ``finished``, ``failed`` or ``killed`` and, if known, its cost."""
        if status not in RUN_STATUSES[1:]:
            raise ConfigError("Invalid run status", expected=" | ".join(RUN_STATUSES[1:]),
                              received=repr(status))
        values: dict[str, Any] = {"status": status, "ended_at": time.time()}
        if cost_usd is not None:
            values["cost_usd"] = float(cost_usd)

        def tx(conn: Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute(update(s.runs).where(s.runs.c.id == run_id).values(values))
        self.write(tx)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run with its params and metrics (``{key: [(step, value), ...]}``)."""
        def tx(conn: Connection) -> dict[str, Any]:
            row = self._require_run(conn, run_id)
            run = self._run_dict(row)
            history: dict[str, list[tuple[int, float]]] = {}
            query = (select(s.metrics.c.key, s.metrics.c.step, s.metrics.c.value)
                     .where(s.metrics.c.run_id == run_id)
                     .order_by(s.metrics.c.key, s.metrics.c.step))
            for key, step, value in conn.execute(query):
                history.setdefault(key, []).append((step, math.nan if value is None else value))
            run["metrics"] = history
            return run
        return self.read(tx)

    def list_runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest runs first, without their metric history."""
        query = select(s.runs).order_by(s.runs.c.started_at.desc()).limit(limit)
        return self.read(lambda conn: [self._run_dict(r) for r in conn.execute(query)])

    @staticmethod
    def _require_run(conn: Connection, run_id: str):
        row = conn.execute(select(s.runs).where(s.runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError("No such run", received=repr(run_id),
                                fix="use an id returned by start_run or shown by list_runs")
        return row

    @staticmethod
    def _run_dict(row) -> dict[str, Any]:
        run = dict(row._mapping)
        run["params"] = loads(run["params"])
        run["tags"] = loads(run["tags"])
        return run
