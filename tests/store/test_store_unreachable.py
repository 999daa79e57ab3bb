"""A store that cannot be opened is one clear error, never a driver traceback: a database
that refuses connections, a SQLite file under a plain file, a workspace that
cannot be created; and the CLI says it in one line (exit 2) without showing the password."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lepton.errors import StoreUnavailableError
from lepton.store import Store

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refusing_postgresql_is_a_clear_error_with_the_password_hidden(tmp_path):
    url = f"postgresql://lepton:s3cret@127.0.0.1:{_closed_port()}/lepton"
    with pytest.raises(StoreUnavailableError, match="Cannot open the Lepton store") as err:
        Store.open(url, workspace=tmp_path)
    assert "s3cret" not in str(err.value) and "***" in str(err.value)
    assert "LEPTON_DB_URL" in str(err.value)


def test_a_sqlite_file_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreUnavailableError, match="Cannot open the Lepton store"):
        Store.open(f"sqlite:///{tmp_path}/file/store.db", workspace=tmp_path)


def test_a_workspace_that_cannot_be_created_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreUnavailableError, match="Cannot create the Lepton workspace"):
        Store.open(workspace=blocker / "workspace")


def test_the_cli_says_it_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "LEPTON_HOME": str(tmp_path),
           "LEPTON_DB_URL": f"postgresql://lepton:s3cret@127.0.0.1:{_closed_port()}/x"}
    result = subprocess.run([sys.executable, "-m", "lepton", "monitor", "mnist"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Cannot open the Lepton store" in lines[0]
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
