"""Atomic files and directories: write to a temporary sibling, fsync, rename, fsync the
parent. A kill at any point leaves either the old version or the new one, never a mix."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (the caller renames the folder into place)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, *, binary: bool = False, encoding: str = "utf-8",
                newline: str | None = None) -> Iterator[IO]:
    """Yield a new file to stream into (text, or bytes when ``binary``); when the block ends
    without an error it replaces ``path`` (fsynced, mode 0644, parent directory fsynced).
    On error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report or export is for people to read
        text = {} if binary else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, "wb" if binary else "w", **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, binary=True) as handle:
        handle.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``path`` (an existing one is
    swapped out and removed). On error the temporary directory is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        fsync_dir(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / "previous")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_directory(path: str | os.PathLike) -> bool:
    """If a kill struck between the two renames of ``atomic_directory``, put the previous
    version back. Returns True when something was recovered."""
    path = Path(path)
    if path.exists():
        return False
    candidates = sorted(path.parent.glob(f".{path.name}.*.old/previous"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    if not candidates:
        return False
    os.replace(candidates[0], path)
    fsync_dir(path.parent)
    return True
