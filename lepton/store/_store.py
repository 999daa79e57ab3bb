"""The Lepton store: runs and metrics (``_runs``), the prediction log and feedback, behind one
object.

Every write is one transaction that is committed (and, on SQLite, fsynced) before the method
returns, and is retried on transient contention; so a write that returned is never lost and
callers never see "database is locked". Writes that may be replayed (prediction log rows,
feedback) are idempotent on their id / key, so a client that retries after a crash cannot
create duplicates.
"""

from __future__ import annotations

import functools
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from lepton.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
)
from lepton.store import _schema as s
from lepton.store._engine import create_store_engine, upgrade, with_retry
from lepton.store._json import dumpb, dumps, loads
from lepton.store._paths import workspace_dir
from lepton.store._runs import RunLog
from lepton.store._values import check_id, iso

T = TypeVar("T")
_PREDICTION_COLUMNS = ["id", "model", "version", "created_at", "latency_ms", "outputs",
                       "input_digest", "input_sample"]


def default_url(workspace: Path | None = None) -> str:
    """``LEPTON_DB_URL`` if set, else the SQLite file ``lepton.db`` in the workspace."""
    url = os.environ.get("LEPTON_DB_URL")
    if url:
        return url
    return f"sqlite:///{(workspace or workspace_dir()) / 'lepton.db'}"


class Store(RunLog):
    """Runs, metrics, the prediction log and feedback (the registry lives in ``lepton.registry``).

    Open it with ``Store.open()``; it is safe to share between threads, and each process
    (or forked worker) opens its own connections.
    """

    def __init__(self, engine: Engine, workspace: Path) -> None:
        self.engine = engine
        self.workspace = workspace
        self.dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str | None = None, *, workspace: str | Path | None = None) -> Store:
        """Open (creating and migrating if needed) the store at ``url``.

        ``url`` defaults to ``$LEPTON_DB_URL``, else SQLite in the workspace
        (``$LEPTON_HOME``, else ``./.lepton``), where registered artifacts are kept too.
        """
        root = (Path(workspace) if workspace is not None else workspace_dir(create=False)).resolve()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(f"Cannot create the Lepton workspace {root}",
                                        received=exc.strerror or str(exc),
                                        fix="set LEPTON_HOME to a folder you can write"
                                        ) from None
        url = url or default_url(root)
        engine = None
        try:
            engine = create_store_engine(url)
            upgrade(engine)
        except (OperationalError, OSError) as exc:
            if engine is not None:
                engine.dispose()
            shown = make_url(url).render_as_string(hide_password=True)
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise StoreUnavailableError(f"Cannot open the Lepton store at {shown}",
                                        received=reason,
                                        fix="check $LEPTON_DB_URL (host, port, user, "
                                            "password, database) and that the database is "
                                            "running, or unset it for the workspace's "
                                            "SQLite file") from None
        return cls(engine, root)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- transactions: used by the registry too --------------------------------------------
    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in one write transaction, committed when this returns; retried on
        transient contention, so ``fn`` must only touch the database (or undo itself)."""
        def attempt() -> T:
            with self.engine.connect().execution_options(lepton_write=True) as conn, \
                    conn.begin():
                return fn(conn)
        return with_retry(attempt)

    def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in one read transaction, which sees one consistent snapshot
        (SQLite's WAL gives that; PostgreSQL needs REPEATABLE READ)."""
        options = {"isolation_level": "REPEATABLE READ"} if self.dialect == "postgresql" else {}

        def attempt() -> T:
            with self.engine.connect().execution_options(**options) as conn, conn.begin():
                return fn(conn)
        return with_retry(attempt)

    def insert(self, table):
        """The dialect's INSERT, which knows ``on_conflict_do_nothing``/``do_update``."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ("ok" when sound); PostgreSQL answers "ok" when
        it can read every table."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                return "\n".join(r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check"))
            for table in s.metadata.sorted_tables:
                conn.execute(select(func.count()).select_from(table)).scalar()
            return "ok"

    # -- prediction log ----------------------------------------------------------------------
    def log_predictions(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append prediction records in one transaction; return how many were new.

        Each row: ``id`` (str, unique), ``model``, ``outputs`` (JSON-able) and optionally
        ``version``, ``latency_ms``, ``input_digest``, ``input_sample``, ``created_at``
        (epoch seconds, default now). A row whose id is already logged is skipped, so a batch
        can be replayed safely after a crash.
        """
        now = time.time()
        records = []
        for row in rows:
            try:
                records.append((check_id(row["id"], "prediction id", 128),
                                check_id(row["model"], "model name", 128), row.get("version"),
                                row.get("created_at") or now, row.get("latency_ms"),
                                row["outputs"], row.get("input_digest"), row.get("input_sample")))
            except KeyError as exc:
                raise ConfigError("A prediction record lacks a field",
                                  expected="id, model and outputs", received=f"no {exc}") from None
        if not records:
            return 0
        if self._json_log:
            return self.log_prediction_json(dumpb(records))
        return self._insert_predictions(records)

    def log_prediction_json(self, rows: bytes) -> int:
        """The server's bulk path: a JSON array of rows ``[id, model, version, created_at,
        latency_ms, outputs, input_digest, input_sample]``, appended in one transaction;
        returns how many were new. The server makes the ids, so they are not checked here.

        On SQLite 3.38+ the array is unpacked by ``json_each`` in one statement: executemany
        stepped once per row and released and retook the GIL each time, which a busy
        server's event loop felt.
        """
        if self._json_log:
            return self.write(lambda conn: conn.exec_driver_sql(
                self._log_json_sql, (rows,)).rowcount)
        return self._insert_predictions([tuple(r) for r in loads(rows)])

    def _insert_predictions(self, rows: list[tuple]) -> int:
        records = [(*r[:5], dumps(r[5]), r[6], None if r[7] is None else dumps(r[7]))
                   for r in rows]
        if self.dialect == "sqlite":  # SQLite before 3.38 lacks ->: one step per row
            return self.write(lambda conn: conn.exec_driver_sql(self._log_sql, records).rowcount)
        stmt = (self.insert(s.predictions).on_conflict_do_nothing(index_elements=["id"])
                .returning(s.predictions.c.id))  # psycopg's executemany does not count rows
        params = [dict(zip(_PREDICTION_COLUMNS, r, strict=True)) for r in records]
        return self.write(lambda conn: len(conn.execute(stmt, params).all()))

    @functools.cached_property
    def _json_log(self) -> bool:
        return self.dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 38)

    @functools.cached_property
    def _feedback_insert(self):
        return (self.insert(s.feedback).on_conflict_do_nothing(index_elements=["key"])
                .returning(s.feedback.c.id))

    @functools.cached_property
    def _log_sql(self) -> str:
        stmt = self.insert(s.predictions).on_conflict_do_nothing(index_elements=["id"])
        compiled = stmt.compile(dialect=self.engine.dialect, column_keys=_PREDICTION_COLUMNS)
        if list(compiled.positiontup or ()) != _PREDICTION_COLUMNS:
            raise RuntimeError("unexpected parameter order in the compiled prediction insert")
        return compiled.string

    # ``->`` keeps outputs and samples as JSON text; "WHERE true" keeps SQLite from reading
    # ON CONFLICT as part of the SELECT's join.
    _log_json_sql = (
        f"INSERT INTO predictions ({', '.join(_PREDICTION_COLUMNS)}) SELECT value ->> 0, "
        "value ->> 1, value ->> 2, value ->> 3, value ->> 4, value -> 5, value ->> 6, "
        "NULLIF(value -> 7, 'null') FROM json_each(?) WHERE true ON CONFLICT (id) DO NOTHING")

    def get_prediction(self, prediction_id: str) -> dict[str, Any]:
        query = select(s.predictions).where(s.predictions.c.id == prediction_id)
        row = self.read(lambda conn: conn.execute(query).first())
        if row is None:
            raise NotFoundError("No such prediction", received=repr(prediction_id)[:140])
        return self._prediction_dict(row)

    def list_predictions(self, model: str | None = None, *, since: float | None = None,
                         limit: int | None = 1000) -> list[dict[str, Any]]:
        """Logged predictions, oldest first, optionally of one model and after ``since``."""
        query = select(s.predictions).order_by(s.predictions.c.created_at, s.predictions.c.id)
        if model is not None:
            query = query.where(s.predictions.c.model == model)
        if since is not None:
            query = query.where(s.predictions.c.created_at > since)
        if limit is not None:
            query = query.limit(limit)
        return self.read(lambda conn: [self._prediction_dict(r) for r in conn.execute(query)])

    def count_predictions(self, model: str | None = None) -> int:
        query = select(func.count()).select_from(s.predictions)
        if model is not None:
            query = query.where(s.predictions.c.model == model)
        return self.read(lambda conn: conn.execute(query).scalar_one())

    @staticmethod
    def _prediction_dict(row) -> dict[str, Any]:
        record = dict(row._mapping)
        record["outputs"] = loads(record["outputs"])
        if record["input_sample"] is not None:
            record["input_sample"] = loads(record["input_sample"])
        return record

    # -- feedback ----------------------------------------------------------------------------
    def add_feedback(self, prediction_id: str, *, label: Any = None,
                     rating: float | None = None, key: str | None = None) -> dict[str, Any]:
        """Attach a true label and/or a rating to a logged prediction; durable on return.

        Idempotent on ``key`` (default: the prediction id, i.e. one feedback per prediction):
        sending the same feedback again returns the stored record with ``created=False``;
        the same key with different content raises ConflictError.
        """
        check_id(prediction_id, "prediction id", 128)
        key = check_id(prediction_id if key is None else key, "idempotency key", 256)
        if label is None and rating is None:
            raise ConfigError("Feedback needs a label or a rating", received="neither",
                              fix="pass label=<true label> and/or rating=<number>")
        if rating is not None:
            if isinstance(rating, bool) or not isinstance(rating, (int, float)) \
                    or not math.isfinite(rating):
                raise ConfigError("Invalid rating", expected="a finite number",
                                  received=repr(rating)[:80])
            rating = float(rating)
        record = {"id": uuid.uuid4().hex, "key": key, "prediction_id": prediction_id,
                  "label": None if label is None else dumps(label), "rating": rating,
                  "created_at": time.time()}

        def tx(conn: Connection) -> dict[str, Any]:
            # One statement on the common path: the foreign key checks the prediction exists,
            # the unique key makes a replay a no-op.
            try:
                inserted = conn.execute(self._feedback_insert, record).first()
            except IntegrityError:
                raise NotFoundError("No prediction with this id", received=repr(prediction_id),
                                    fix="send feedback for an id returned by a prediction"
                                    ) from None
            if inserted is not None:
                return {**record, "created": True}
            stored = dict(conn.execute(select(s.feedback).where(s.feedback.c.key == key)).one()
                          ._mapping)
            same = all(stored[f] == record[f] for f in ("prediction_id", "label", "rating"))
            if not same:
                raise ConflictError("This idempotency key was already used for other feedback",
                                    received=f"key={key!r}",
                                    fix="use a new key for new feedback, or resend it unchanged")
            return {**stored, "created": False}

        result = self.write(tx)
        result["label"] = label if result["created"] else _maybe_loads(result["label"])
        result["time"] = iso(result["created_at"])
        return result

    def iter_feedback(self, model: str | None = None) -> Iterator[dict[str, Any]]:
        """Every feedback record (oldest first) with its prediction's model, version, outputs
        and input sample; streamed, so exports of millions of rows stay small in memory."""
        p, f = s.predictions, s.feedback
        query = (select(f.c.id, f.c.key, f.c.prediction_id, p.c.model, p.c.version,
                        f.c.label, f.c.rating, f.c.created_at, p.c.outputs, p.c.input_sample)
                 .join(p, p.c.id == f.c.prediction_id)
                 .order_by(f.c.created_at, f.c.id))
        if model is not None:
            query = query.where(p.c.model == model)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=1000).execute(query)
            for row in result:
                record = dict(row._mapping)
                record["label"] = _maybe_loads(record["label"])
                record["outputs"] = loads(record["outputs"])
                record["input_sample"] = _maybe_loads(record["input_sample"])
                record["time"] = iso(record["created_at"])
                yield record

    def list_feedback(self, model: str | None = None) -> list[dict[str, Any]]:
        """All feedback records, oldest first (see ``iter_feedback``)."""
        return list(self.iter_feedback(model))

    def count_feedback(self) -> int:
        return self.read(lambda conn: conn.execute(
            select(func.count()).select_from(s.feedback)).scalar_one())


def _maybe_loads(value: str | None) -> Any:
    return None if value is None else loads(value)
