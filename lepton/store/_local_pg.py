"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` into a temporary
directory, listen on a free loopback port, stop and delete everything on exit.

PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user
(which Debian's package creates).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lepton.errors import MissingDependencyError


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise MissingDependencyError("postgresql", "postgres")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_postgres(max_connections: int = 300) -> Iterator[str]:
    """Yield ``postgresql+psycopg://lepton@127.0.0.1:PORT/lepton`` of a fresh server."""
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="lepton-pg-"))
    data, log = root / "data", root / "server.log"
    run_as: dict = {}
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    port = _free_port()

    def pg(*args: str) -> None:
        subprocess.run([str(bindir / args[0]), *args[1:]], check=True, cwd=root,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **run_as)

    try:
        try:
            pg("initdb", "-D", str(data), "-U", "lepton", "-A", "trust", "-E", "UTF8",
               "--locale=C", "--no-sync")
            pg("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
               f"-h 127.0.0.1 -p {port} -k {root} -c max_connections={max_connections}",
               "start")
            pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "lepton", "lepton")
        except subprocess.CalledProcessError as exc:
            detail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"could not start PostgreSQL: "
                               f"{exc.stderr.decode(errors='replace')[-2000:]}\n{detail}") from None
        yield f"postgresql+psycopg://lepton@127.0.0.1:{port}/lepton"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                            "stop"], cwd=root, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False, **run_as)
        shutil.rmtree(root, ignore_errors=True)
