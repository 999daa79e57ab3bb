"""Engines for the store: SQLite tuned for many writers, or PostgreSQL; retries; migrations.

SQLite: WAL (readers never block the writer), ``synchronous=FULL`` (a commit that returned
survives power loss; ``NORMAL`` does not in WAL mode), a busy timeout, and every write
transaction opened with ``BEGIN IMMEDIATE``. The last point is what keeps "database is
locked" away from callers: a deferred transaction that reads and then writes cannot wait on
the busy handler when another writer got in first, it fails at once. Whatever contention still
escapes (checkpoints, recovery) is retried here, transparently, because a rolled-back
transaction is safe to run again.
"""

from __future__ import annotations

import functools
import os
import random
import sqlite3
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from lepton.errors import ConfigError, require

BUSY_TIMEOUT_S = 30.0
RETRY_DEADLINE_S = 120.0
HEAD_REVISION = "0003"
_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x4C455054  # "LEPT": one advisory lock id for schema upgrades
_RETRY_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock n/a

T = TypeVar("T")


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` / ``postgres://`` and use psycopg 3, the driver we ship."""
    try:
        parsed = make_url(url.replace("postgres://", "postgresql://", 1)
                          if url.startswith("postgres://") else url)
    except ArgumentError:
        raise ConfigError("Invalid database URL", expected="sqlite:///PATH or "
                          "postgresql://USER@HOST:PORT/DB", received="(not shown: may hold a "
                          "password)", fix="check LEPTON_DB_URL") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        require("psycopg", "postgres")
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError("Unsupported database", expected="sqlite or postgresql",
                          received=backend, fix="set LEPTON_DB_URL to a PostgreSQL URL or unset it")
    return parsed.render_as_string(hide_password=False)


def create_store_engine(url: str) -> Engine:
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = _sqlite_engine(url)
    else:
        # No pre-ping round trip per checkout: a dropped connection fails its transaction,
        # which with_retry runs again on a fresh one.
        engine = create_engine(url, pool_size=4, max_overflow=8)
    os.register_at_fork(after_in_child=functools.partial(_drop_pool, weakref.ref(engine)))
    return engine


def _drop_pool(ref: weakref.ref) -> None:
    """In a forked child (uvicorn workers, multiprocessing), forget the parent's connections
    (sockets, SQLite handles) without closing them under the parent's feet."""
    engine = ref()
    if engine is not None:
        engine.dispose(close=False)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S,
                                              "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        write = conn.get_execution_options().get("lepton_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def is_transient(exc: BaseException) -> bool:
    """True for errors that mean "try again": SQLite busy/locked, PG serialization/deadlock."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        message = str(orig).lower()
        return "locked" in message or "busy" in message
    return getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES


def with_retry(fn: Callable[[], T], deadline_s: float = RETRY_DEADLINE_S) -> T:
    """Run ``fn`` (one whole transaction) again on transient errors, with jittered backoff."""
    start = time.monotonic()
    delay = 0.005
    while True:
        try:
            return fn()
        except (OperationalError, DBAPIError) as exc:
            if not is_transient(exc) or time.monotonic() - start > deadline_s:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.5)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe when many processes open the store at once.

    The upgrade runs in one write transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an
    advisory lock), and Alembic re-reads the revision inside it, so the second process to
    arrive finds the work done.
    """
    if with_retry(lambda: current_revision(engine)) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))

    def run() -> None:
        with engine.connect().execution_options(lepton_write=True) as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    with_retry(run)
