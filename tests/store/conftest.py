"""Fixtures for the store suite, which runs twice: on SQLite and on a real PostgreSQL.

The PostgreSQL server is started once per session, only if a PostgreSQL test is selected:
``initdb`` into a throwaway directory, listening on a free loopback port, stopped and deleted
at the end (``lepton.store._local_pg``). Each test gets its own schema (through
``search_path``), so tests never see each other's rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL on 127.0.0.1 for the session; yields its base URL."""
    from lepton.store._local_pg import local_postgres

    # Not installed or not starting is an error, never a skip (scripts/system-deps.sh
    # installs PostgreSQL).
    with local_postgres() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'lepton.db'}"
    import psycopg

    base = request.getfixturevalue("pg_server")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture
def workspace(tmp_path, db_url, monkeypatch):
    """LEPTON_HOME and LEPTON_DB_URL set for this process and the ones it starts."""
    home = tmp_path / "ws"
    monkeypatch.setenv("LEPTON_HOME", str(home))
    monkeypatch.setenv("LEPTON_DB_URL", db_url)
    monkeypatch.setenv("LEPTON_USER", "tester")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return home


@pytest.fixture
def store(workspace):
    from lepton.store import Store

    with Store.open() as opened:
        yield opened


@pytest.fixture
def registry(store):
    from lepton.registry import Registry

    return Registry(store)


def write_artifact(path: Path, *, accuracy: float = 0.9, seed: int = 0) -> Path:
    """A small but real Lepton artifact: lepton.json and safetensors weights."""
    from safetensors.numpy import save_file

    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"dense.weight": rng.standard_normal((2, 4)).astype(np.float32),
               "dense.bias": np.zeros(2, np.float32)}, str(path / "weights.safetensors"))
    manifest = {
        "format": "lepton.model", "format_version": 1, "lepton_version": "0.1.0",
        "model": {"kind": "sequential", "config": {}, "input_shapes": [[4]]},
        "signature": {"inputs": [{"name": "input_1", "shape": [-1, 4], "datatype": "FP32"}],
                      "outputs": [{"name": "output_1", "shape": [-1, 2], "datatype": "FP32"}]},
        "metadata": {"task": "binary", "labels": ["ok", "fraud"],
                     "metrics": {"accuracy": accuracy},
                     "lineage": {"data_hash": f"sha256:{seed}", "parent": None}},
    }
    (path / "lepton.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture
def make_artifact(tmp_path):
    """``make_artifact(name, **kw)`` writes an artifact under tmp_path and returns its path."""
    return lambda name="artifact", **kw: write_artifact(tmp_path / "artifacts" / name, **kw)


@pytest.fixture
def artifact(make_artifact) -> Path:
    return make_artifact()


@pytest.fixture
def start_worker(workspace):
    """``start_worker(*args)`` runs tests/store/_worker.py in a new process; all are reaped."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_worker.py")),
                                 *map(str, args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
