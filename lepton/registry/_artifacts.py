"""Copying an artifact into the workspace: no symlinks, no pickle, no escaping archive members.

A registered artifact is copied (never moved or linked) so that the registry owns an
immutable copy; files are fsynced before the registration is committed, and the copy is
hashed on the way so the version records what it holds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from lepton.errors import ArtifactError, UnsafeArtifactError

MANIFEST = "lepton.json"
PICKLE_SUFFIXES = {".pkl", ".pickle", ".pt", ".pth", ".joblib", ".ckpt"}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
_CHUNK = 1 << 20


def _check_member(name: str, archive: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or "\x00" in name:
        raise UnsafeArtifactError("Archive member escapes the artifact directory",
                                  received=f"{name!r} in {archive}",
                                  fix="rebuild the archive with relative paths only")
    return path


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract a .zip/.tar(.gz) safely into ``dest``; return the directory holding lepton.json."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info.filename, archive.name)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UnsafeArtifactError("Archive holds a symlink", received=info.filename)
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                _check_member(member.name, archive.name)
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArtifactError("Archive holds a link or special file",
                                              received=member.name,
                                              fix="archive regular files only")
            tf.extractall(dest, filter="data")
    if (dest / MANIFEST).is_file():
        return dest
    children = list(dest.iterdir())
    if len(children) == 1 and (children[0] / MANIFEST).is_file():
        return children[0]
    raise ArtifactError("Not a Lepton model archive: no lepton.json at its top",
                        received=archive.name)


def copy_artifact(src: Path, dest: Path) -> str:
    """Copy the artifact directory ``src`` to the new directory ``dest``; return its sha256.

    The digest covers every relative path and its bytes, in sorted order, so two identical
    artifacts hash the same wherever they lie.
    """
    files: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(src):
        for name in sorted(dirs + names):
            path = Path(root) / name
            if path.is_symlink():
                raise UnsafeArtifactError("Artifacts may not contain symlinks",
                                          received=str(path.relative_to(src)),
                                          fix="copy the target file into the artifact instead")
            if name in names:
                if not path.is_file():
                    raise ArtifactError("Artifacts hold regular files only",
                                        received=str(path.relative_to(src)))
                if path.suffix.lower() in PICKLE_SUFFIXES:
                    raise UnsafeArtifactError(
                        "Artifact holds a pickle-based file, which could run code when loaded",
                        received=str(path.relative_to(src)),
                        fix="save weights with safetensors (model.save writes them)")
                files.append((path.relative_to(src).as_posix(), path))
    digest = hashlib.sha256()
    dest.mkdir(parents=True)
    try:
        for relative, path in sorted(files):
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            digest.update(relative.encode() + b"\0")
            with open(path, "rb") as fin, open(target, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    digest.update(chunk)
                    fout.write(chunk)
                fout.flush()
                os.fsync(fout.fileno())
        for directory in {dest, *((dest / relative).parent for relative, _ in files)}:
            _fsync_dir(directory)
        _fsync_dir(dest.parent)
    except BaseException:  # a full disk or a permission error: raise, leave nothing behind
        remove_tree(dest)
        raise
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
