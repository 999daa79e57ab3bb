"""Alembic migrations: they build exactly the declared schema, and concurrent first opens of
a fresh database agree on one upgrade."""

from __future__ import annotations

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from lepton.store import Store
from lepton.store._engine import HEAD_REVISION
from lepton.store._schema import metadata


def test_migrations_match_the_declared_schema(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            == HEAD_REVISION


def test_reopening_does_not_migrate_again(store):
    store.log_predictions([{"id": "a", "model": "m", "outputs": 1}])
    with Store.open() as again:
        with again.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert again.count_predictions() == 1


def test_concurrent_first_opens_upgrade_once(workspace, start_worker, tmp_path):
    go = tmp_path / "go"
    go.touch()  # no waiting: all processes race to create the schema
    procs = [start_worker("mixed", f"w{i}", 5, go) for i in range(6)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        json.loads(out)
    with Store.open() as store:
        assert len(store.list_runs()) == 6
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
