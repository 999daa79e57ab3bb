"""Where a study lives, and opening it safely.

Default: Optuna's journal file in the output folder (append-only, a file lock per write; the
storage Optuna recommends for processes on one machine). ``postgresql://`` shares a study
between machines. SQLite is refused for parallel workers: its writers lock each other out
("database is locked"), which Optuna's own documentation warns about. A study remembers the
digest of the data it was created on; opening it on other data is refused.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: Optuna's own lock file
    fcntl = None  # type: ignore[assignment]

from lepton.errors import ConfigError, LeptonError

DIGEST = "lepton:data_digest"
JOURNAL = "study.journal"


class TuneError(LeptonError, RuntimeError):
    """A study cannot be opened or run (storage unreachable, other data, every trial failed)."""


def storage_url(url: str | None, out: Path) -> str:
    """The URL to record: ``journal:<path>`` for the default file, else ``url`` itself."""
    return url or f"journal:{(Path(out) / JOURNAL).resolve()}"


def open_storage(url: str, jobs: int = 1) -> Any:
    """An Optuna storage for ``url`` (``journal:PATH``, ``postgresql://...``, ``sqlite:///``)."""
    import optuna
    from optuna.storages.journal import JournalFileOpenLock

    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FlockLock(str(path)) if fcntl is not None else JournalFileOpenLock(str(path))
        return optuna.storages.JournalStorage(journal_backend()(str(path), lock_obj=lock))
    if url.startswith("sqlite") and jobs > 1:
        raise ConfigError("SQLite cannot hold a study for parallel workers",
                          received=f"--storage {url} with --jobs {jobs}",
                          fix="drop --storage (a journal file in --out is the default) or "
                              "use postgresql://")
    if not url.startswith(("postgresql", "sqlite", "mysql")):
        raise ConfigError("Unknown study storage", received=url,
                          expected="no --storage (journal file), postgresql://..., sqlite:///...")
    if url.startswith("postgresql://"):  # SQLAlchemy's default driver is psycopg2: use v3
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"pool_pre_ping": True, **(
                {"connect_args": {"connect_timeout": 10}} if "postgresql" in url else {})})
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy and the drivers raise their own
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
        raise TuneError("Cannot reach the study storage", received=f"{_hide(url)}: {reason}",
                        fix="check the URL, that the server runs and accepts this user") \
            from None


@functools.cache
def journal_backend() -> type:
    """Optuna's journal file backend, appending without an ``fsync`` per append.

    Optuna syncs every append to disk: 3-5 ms each here, and a trial writes ~30 records (its
    parameters, each pruning report, the result), which cost 8-40 % of a one-second trial.
    Written records sit in the page cache, which a killed worker (kill -9) does not lose; only
    a machine crash can, and then Optuna's reader skips a torn last line and the heartbeat
    fails the trial that was running. The lock and the format are Optuna's own.
    """
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file

    class PageCacheJournal(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
            with get_lock_file(self._lock), open(self._file_path, "ab") as f:
                f.write(data.encode("utf-8"))

    return PageCacheJournal


class FlockLock:
    """The journal's write lock as an OS file lock (``flock``).

    Optuna's file locks create and delete a lock file and, when it is taken, retry with a
    backoff that grows to 1 s: two workers appending a few dozen records per trial then
    spend more time asleep than training (``--jobs 2`` ran at half the speed of one worker).
    ``flock`` blocks in the kernel and wakes the waiter at once, and a process killed while
    holding it releases it with its file descriptors (no stale lock file to time out).
    """

    def __init__(self, path: str) -> None:
        self.path = path + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _hide(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}@{host}"
    return url


def open_study(name: str, storage: Any, metric_direction: str, digest: str,
               sampler: Any = None, pruner: Any = None) -> Any:
    """Create study ``name`` or resume it; refuse one made on other data."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                pruner=pruner, direction=metric_direction, load_if_exists=True)
    stored = study.user_attrs.get(DIGEST)
    if stored is None:
        study.set_user_attr(DIGEST, digest)
    elif stored != digest:
        raise TuneError(f"Study '{name}' was made on other data",
                        expected=f"data with digest {stored[:16]}",
                        received=f"data with digest {digest[:16]}",
                        fix="pass another --study name (or --out folder) for this data")
    if study.direction.name.lower() != metric_direction:
        raise TuneError(f"Study '{name}' optimises in the other direction",
                        expected=study.direction.name.lower(), received=metric_direction,
                        fix="use the study's metric or another --study name")
    return study
