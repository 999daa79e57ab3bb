"""The model registry: named models, numbered immutable versions, and aliases with history.

Stages are aliases: ``production`` and ``staging`` are just the two every team uses, and any
other valid name (``champion``, ``canary``) works the same way. Each alias points to exactly
one version; moving it is one transaction that also appends to ``alias_history``, so "which
version was in production on March 3rd?" always has an answer, also after deletions.

The database is the source of truth. An artifact is copied to a directory of its own
(``models/<name>/<version>-<token>``) *before* its version row is committed: a crash can leave
an unreferenced directory behind (``gc`` removes those) but never a version without files,
and two registrations racing for one version never touch each other's files.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from lepton.errors import ArtifactError, ConfigError, ConflictError, NotFoundError
from lepton.registry._aliases import Aliases, parse_version
from lepton.registry._artifacts import (
    ARCHIVE_SUFFIXES,
    copy_artifact,
    extract_archive,
    remove_tree,
)
from lepton.store import _schema as s
from lepton.store._json import dumps, loads
from lepton.store._paths import safe_join, validate_name
from lepton.store._store import Store
from lepton.store._values import actor, iso

STAGES = ("production", "staging")
_METADATA_KEYS = ("task", "labels", "metrics", "lineage", "training", "threshold")
_ORPHAN_AGE_S = 3600.0


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``"name"``, ``"name:3"``, ``"name:latest"`` or ``"name@alias"`` -> (name, version, alias).

    Version ``None`` with alias ``None`` means "the default": production if set, else latest.
    """
    if not isinstance(ref, str):
        raise ConfigError("Invalid model reference", expected="NAME, NAME:VERSION or NAME@ALIAS",
                          received=repr(ref))
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return validate_name(name), None, validate_name(alias, "alias")
    if ":" in ref:
        name, version = ref.split(":", 1)
        if version == "latest":
            return validate_name(name), None, "latest"
        return validate_name(name), parse_version(version), None
    return validate_name(ref), None, None


class Registry(Aliases):
    """Register, look up, promote and delete model versions kept in a Lepton store."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store if store is not None else Store.open()
        self.root = self.store.workspace / "models"

    # -- register ----------------------------------------------------------------------------
    def register(self, path: str | Path, name: str, *, version: int | None = None,
                 description: str = "", run_id: str | None = None) -> dict[str, Any]:
        """Copy the artifact at ``path`` (directory or .zip/.tar.gz) into the workspace and
        record it as the next version of ``name`` (or as ``version``).

        Registering a version that exists raises ConflictError; when two processes race for
        the same version, exactly one wins.
        """
        from lepton.artifact.manifest import read_manifest  # loads torch: only when needed

        name = validate_name(name)
        if version is not None:
            version = parse_version(version)
        src = Path(path)
        if not src.exists():
            raise NotFoundError("No artifact at this path", received=str(path),
                                fix="pass the directory written by model.save(...)")
        model_dir = safe_join(self.root, name)
        token = uuid.uuid4().hex[:12]
        staged = model_dir / f".staged-{token}"
        with tempfile.TemporaryDirectory(prefix="lepton-extract-") as scratch:
            if src.is_file():
                if not src.name.endswith(ARCHIVE_SUFFIXES):
                    raise ArtifactError("Cannot register this file", expected="an artifact "
                                        "directory or a .zip/.tar/.tar.gz of one",
                                        received=src.name)
                src = extract_archive(src, Path(scratch))
            manifest = read_manifest(src)
            model_dir.mkdir(parents=True, exist_ok=True)
            digest = copy_artifact(src, staged)
        info = manifest.metadata
        meta = {k: info[k] for k in _METADATA_KEYS if k in info}
        meta["signature"] = manifest.document.get("signature")
        meta["format_version"] = manifest.format_version
        meta["variant"] = manifest.variant["name"]
        meta["runtime"] = manifest.runtime["name"]
        if manifest.lineage:
            meta["artifact_lineage"] = manifest.lineage
        row = {"digest": digest, "metadata": dumps(meta), "run_id": run_id,
               "description": description, "created_by": actor()}

        def tx(conn: Connection) -> dict[str, Any]:
            model_id = self._model_id(conn, name, create=True, lock=True)
            number = version
            if number is None:
                latest = conn.execute(select(func.max(s.model_versions.c.version))
                                      .where(s.model_versions.c.model_id == model_id)).scalar()
                number = (latest or 0) + 1
            elif self._version_row(conn, model_id, number) is not None:
                raise ConflictError(f"Model '{name}' already has version {number}",
                                    fix="omit the version to get the next one, or pick another")
            final = f"{number}-{token}"
            conn.execute(s.model_versions.insert().values(
                model_id=model_id, version=number, path=f"models/{name}/{final}",
                created_at=time.time(), **row))
            return {"version": number, "dir": final}

        try:
            done = self.store.write(tx)
        except IntegrityError:
            remove_tree(staged)
            raise ConflictError(f"Model '{name}' got this version from a concurrent registration",
                                received=f"version={version}",
                                fix="omit the version to get the next one") from None
        except BaseException:
            remove_tree(staged)
            raise
        # The row names the final directory; renaming after the commit cannot lose anything:
        # until it happens, resolve() finds the staged copy under its token (see _locate).
        staged.rename(model_dir / done["dir"])
        return self.get(name, done["version"])

    # -- look up -----------------------------------------------------------------------------
    def resolve(self, ref: str) -> dict[str, Any]:
        """``name`` (production, else latest), ``name:3``, ``name:latest`` or ``name@alias``
        -> the version's record, with ``path`` the absolute artifact directory."""
        name, version, alias = parse_ref(ref)

        def tx(conn: Connection) -> int:
            model_id = self._model_id(conn, name)
            if version is not None:
                return version
            if alias not in (None, "latest"):
                number = self._alias_version(conn, model_id, alias)
                if number is None:
                    raise NotFoundError(f"Model '{name}' has no alias '{alias}'",
                                        fix=f"lepton models promote {name}:VERSION --to {alias}")
                return number
            number = None if alias == "latest" else self._alias_version(conn, model_id,
                                                                        "production")
            if number is None:
                number = conn.execute(select(func.max(s.model_versions.c.version))
                                      .where(s.model_versions.c.model_id == model_id)).scalar()
            if number is None:
                raise NotFoundError(f"Model '{name}' has no versions",
                                    fix=f"lepton models register PATH --name {name}")
            return number
        return self.get(name, self.store.read(tx))

    def get(self, name: str, version: int) -> dict[str, Any]:
        """One version's record; NotFoundError if absent."""
        name, version = validate_name(name), parse_version(version)

        def tx(conn: Connection):
            model_id = self._model_id(conn, name)
            row = self._version_row(conn, model_id, version)
            if row is None:
                raise NotFoundError(f"Model '{name}' has no version {version}",
                                    fix=f"lepton models show {name} lists its versions")
            aliases = conn.execute(select(s.model_aliases.c.alias).where(
                s.model_aliases.c.model_id == model_id,
                s.model_aliases.c.version == version).order_by(s.model_aliases.c.alias))
            return row, [a for (a,) in aliases]
        row, aliases = self.store.read(tx)
        return self._version_dict(name, row, aliases)

    def list_models(self) -> list[dict[str, Any]]:
        """Every model: name, number of versions, latest version, aliases."""
        m, v, a = s.registered_models, s.model_versions, s.model_aliases

        def tx(conn: Connection) -> list[dict[str, Any]]:
            stats = {row.model_id: row for row in conn.execute(
                select(v.c.model_id, func.count().label("n"), func.max(v.c.version)
                       .label("latest")).group_by(v.c.model_id))}
            aliases: dict[int, dict[str, int]] = {}
            for row in conn.execute(select(a.c.model_id, a.c.alias, a.c.version)):
                aliases.setdefault(row.model_id, {})[row.alias] = row.version
            out = []
            for row in conn.execute(select(m).order_by(m.c.name)):
                stat = stats.get(row.id)
                out.append({"name": row.name, "description": row.description,
                            "versions": stat.n if stat else 0,
                            "latest_version": stat.latest if stat else None,
                            "aliases": aliases.get(row.id, {}),
                            "created_at": iso(row.created_at), "created_by": row.created_by})
            return out
        return self.store.read(tx)

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        """All versions of ``name``, oldest first, each with the aliases pointing at it."""
        name = validate_name(name)

        def tx(conn: Connection):
            model_id = self._model_id(conn, name)
            rows = conn.execute(select(s.model_versions).where(
                s.model_versions.c.model_id == model_id).order_by(s.model_versions.c.version))
            aliases: dict[int, list[str]] = {}
            for alias, number in conn.execute(
                    select(s.model_aliases.c.alias, s.model_aliases.c.version)
                    .where(s.model_aliases.c.model_id == model_id)
                    .order_by(s.model_aliases.c.alias)):
                aliases.setdefault(number, []).append(alias)
            return [(row, aliases.get(row.version, [])) for row in rows.all()]
        return [self._version_dict(name, row, al) for row, al in self.store.read(tx)]

    # -- delete ------------------------------------------------------------------------------
    def delete(self, name: str, version: int | None = None, *,
               force: bool = False) -> list[int]:
        """Delete one version, or the whole model when ``version`` is None; return the
        versions deleted. A version that an alias points to is kept unless ``force``
        (the alias is then removed, and that is recorded in the history)."""
        name = validate_name(name)
        if version is not None:
            version = parse_version(version)
        v = s.model_versions

        def tx(conn: Connection) -> list[tuple[int, str]]:
            model_id = self._model_id(conn, name, lock=True)
            query = select(v.c.version, v.c.path).where(v.c.model_id == model_id)
            if version is not None:
                query = query.where(v.c.version == version)
            doomed = [(r.version, r.path) for r in conn.execute(query)]
            if version is not None and not doomed:
                raise NotFoundError(f"Model '{name}' has no version {version}")
            numbers = {n for n, _ in doomed}
            held = {a: n for a, n in conn.execute(
                select(s.model_aliases.c.alias, s.model_aliases.c.version)
                .where(s.model_aliases.c.model_id == model_id)) if n in numbers}
            if held and not force:
                listing = ", ".join(f"{a} -> {n}" for a, n in sorted(held.items()))
                raise ConflictError(f"Model '{name}' still has aliases on what would be deleted",
                                    received=listing, fix="promote another version first, or "
                                    "pass force=True (--force)")
            for alias, number in held.items():
                self._drop_alias(conn, model_id, name, alias, number, "deleted")
            conn.execute(delete(v).where(v.c.model_id == model_id,
                                         v.c.version.in_(numbers)))
            if version is None:
                conn.execute(delete(s.registered_models).where(
                    s.registered_models.c.id == model_id))
            return doomed
        doomed = self.store.write(tx)
        for _, relative in doomed:
            remove_tree(self._locate(relative))
        return sorted(n for n, _ in doomed)

    def gc(self, older_than_s: float = _ORPHAN_AGE_S) -> list[str]:
        """Remove artifact directories no version refers to (left by crashed registrations),
        if older than ``older_than_s``; return their workspace-relative paths."""
        if not self.root.is_dir():
            return []
        tokens = {Path(p).name.split("-", 1)[1] for (p,) in self.store.read(
            lambda conn: conn.execute(select(s.model_versions.c.path)).all())}
        cutoff, removed = time.time() - older_than_s, []
        for entry in self.root.glob("*/*"):
            # final "<version>-<token>", ".staged-<token>", ".extract-<random>"
            if entry.name.rsplit("-", 1)[-1] not in tokens and entry.stat().st_mtime < cutoff:
                remove_tree(entry)
                removed.append(f"models/{entry.parent.name}/{entry.name}")
        return removed

    # -- helpers -----------------------------------------------------------------------------
    def _model_id(self, conn: Connection, name: str, *, create: bool = False,
                  lock: bool = False) -> int:
        m = s.registered_models
        if create:
            conn.execute(self.store.insert(m).values(
                name=name, description="", created_at=time.time(), created_by=actor())
                .on_conflict_do_nothing(index_elements=["name"]))
        query = select(m.c.id).where(m.c.name == name)
        if lock:  # PostgreSQL: serialise writers of one model (SQLite: BEGIN IMMEDIATE does)
            query = query.with_for_update()
        model_id = conn.execute(query).scalar()
        if model_id is None:
            raise NotFoundError(f"No model named '{name}'",
                                fix="lepton models list shows the registered models")
        return model_id

    @staticmethod
    def _version_row(conn: Connection, model_id: int, version: int):
        v = s.model_versions
        return conn.execute(select(v).where(v.c.model_id == model_id,
                                            v.c.version == version)).first()

    def _locate(self, relative: str) -> Path:
        """The artifact directory for a stored path; before the post-commit rename it is
        still the staged copy with the same token."""
        final = safe_join(self.store.workspace, *relative.split("/"))
        if final.exists():
            return final
        token = final.name.split("-", 1)[1]
        staged = final.with_name(f".staged-{token}")
        return staged if staged.exists() else final

    def _version_dict(self, name: str, row, aliases: list[str]) -> dict[str, Any]:
        meta: Mapping[str, Any] = loads(row.metadata)
        return {"name": name, "version": row.version, "path": str(self._locate(row.path)),
                "aliases": aliases, "digest": row.digest, "run_id": row.run_id,
                "description": row.description, "created_at": iso(row.created_at),
                "created_by": row.created_by, **meta}
