"""Aliases and their history: the part of the ``Registry`` that moves ``production``,
``staging`` or any other alias, and answers which version an alias pointed at, when (a mixin:
it needs the registry's ``store``, ``_model_id`` and ``_version_row``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from lepton.errors import ConfigError, NotFoundError
from lepton.store import _schema as s
from lepton.store._paths import validate_name
from lepton.store._values import actor, iso


def parse_version(version: object) -> int:
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        return version
    if isinstance(version, str) and version.isdigit() and int(version) > 0:
        return int(version)
    raise ConfigError("Invalid model version", expected="a positive integer",
                      received=repr(version), fix="use NAME:3, NAME@production or NAME")


def _to_epoch(when: float | datetime | str) -> float:
    if isinstance(when, (int, float)):
        return float(when)
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError("Invalid time", expected="ISO 8601, e.g. 2026-03-03T12:00:00Z",
                              received=repr(when)) from None
    if when.tzinfo is None:
        when = when.astimezone()  # a naive time is local time
    return when.timestamp()


class Aliases:
    """``aliases``, ``promote``, ``remove_alias``, ``history``, ``version_at``."""

    store: Any
    _model_id: Callable[..., int]
    _version_row: Callable[..., Any]

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` for ``name``."""
        name = validate_name(name)

        def tx(conn: Connection) -> dict[str, int]:
            model_id = self._model_id(conn, name)
            return dict(conn.execute(select(s.model_aliases.c.alias, s.model_aliases.c.version)
                                     .where(s.model_aliases.c.model_id == model_id)).all())
        return self.store.read(tx)

    def promote(self, name: str, version: int, to: str = "production", *,
                reason: str = "") -> dict[str, Any]:
        """Point alias ``to`` (``production``, ``staging`` or any alias) at ``version``.

        One transaction moves the alias and records who moved it, when, and from which
        version; at no moment does the alias point at zero or two versions.
        """
        name, version, alias = validate_name(name), parse_version(version), \
            validate_name(to, "alias")
        if alias == "latest":
            raise ConfigError("'latest' is reserved", fix="pick another alias name")

        def tx(conn: Connection) -> dict[str, Any]:
            model_id = self._model_id(conn, name, lock=True)
            if self._version_row(conn, model_id, version) is None:
                raise NotFoundError(f"Model '{name}' has no version {version}",
                                    fix=f"lepton models show {name} lists its versions")
            previous = self._alias_version(conn, model_id, alias)
            if previous == version:
                return self._event(name, alias, previous, version, 0.0, reason, changed=False)
            now, who = time.time(), actor()
            stmt = self.store.insert(s.model_aliases).values(
                model_id=model_id, alias=alias, version=version, updated_at=now, updated_by=who)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["model_id", "alias"],
                set_={"version": version, "updated_at": now, "updated_by": who}))
            conn.execute(s.alias_history.insert().values(
                model_name=name, alias=alias, from_version=previous, to_version=version,
                at=now, actor=who, reason=reason))
            return self._event(name, alias, previous, version, now, reason, who=who)
        return self.store.write(tx)

    def remove_alias(self, name: str, alias: str, *, reason: str = "") -> dict[str, Any]:
        """Take alias ``alias`` off ``name`` (e.g. retire staging); recorded in the history."""
        name, alias = validate_name(name), validate_name(alias, "alias")

        def tx(conn: Connection) -> dict[str, Any]:
            model_id = self._model_id(conn, name, lock=True)
            previous = self._alias_version(conn, model_id, alias)
            if previous is None:
                raise NotFoundError(f"Model '{name}' has no alias '{alias}'")
            return self._drop_alias(conn, model_id, name, alias, previous, reason)
        return self.store.write(tx)

    def history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every alias move of ``name`` (optionally of one alias), oldest first."""
        name = validate_name(name)
        h = s.alias_history
        query = select(h).where(h.c.model_name == name).order_by(h.c.at, h.c.id)
        if alias is not None:
            query = query.where(h.c.alias == validate_name(alias, "alias"))
        rows = self.store.read(lambda conn: conn.execute(query).all())
        return [self._event(r.model_name, r.alias, r.from_version, r.to_version, r.at, r.reason,
                            who=r.actor) for r in rows]

    def version_at(self, name: str, alias: str, when: float | datetime | str) -> int | None:
        """The version ``alias`` pointed at, at time ``when`` (None if it pointed at none)."""
        # Times are printed to the microsecond: a time copied from `history` must match
        # its own event, whatever rounding the float went through.
        at = _to_epoch(when) + 1e-6
        h = s.alias_history
        query = (select(h.c.to_version)
                 .where(h.c.model_name == validate_name(name), h.c.alias == alias, h.c.at <= at)
                 .order_by(h.c.at.desc(), h.c.id.desc()).limit(1))
        return self.store.read(lambda conn: conn.execute(query).scalar())

    @staticmethod
    def _alias_version(conn: Connection, model_id: int, alias: str) -> int | None:
        a = s.model_aliases
        return conn.execute(select(a.c.version).where(a.c.model_id == model_id,
                                                      a.c.alias == alias)).scalar()

    def _drop_alias(self, conn: Connection, model_id: int, name: str, alias: str,
                    previous: int, reason: str) -> dict[str, Any]:
        a, now, who = s.model_aliases, time.time(), actor()
        conn.execute(delete(a).where(a.c.model_id == model_id, a.c.alias == alias))
        conn.execute(s.alias_history.insert().values(
            model_name=name, alias=alias, from_version=previous, to_version=None, at=now,
            actor=who, reason=reason))
        return self._event(name, alias, previous, None, now, reason, who=who)

    @staticmethod
    def _event(name: str, alias: str, from_version: int | None, to_version: int | None,
               at: float, reason: str, *, who: str = "", changed: bool = True) -> dict[str, Any]:
        return {"name": name, "alias": alias, "from_version": from_version,
                "to_version": to_version, "at": iso(at) if at else None, "timestamp": at,
                "actor": who, "reason": reason, "changed": changed}
