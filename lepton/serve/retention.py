"""The retention sweep: logged predictions (and kept inputs) older than the retention period
are folded into per-window sketches first, then deleted; rows that carry feedback stay (the
foreign key and retraining need them). Monitoring history therefore survives the deletion.

    from lepton.serve.retention import sweep
    sweep(store, "30d")

``lepton serve --log-retention 30d`` runs it in a background thread (``Sweeper``), every
tenth of the period (at least every second, at most every hour). It lives in ``serve`` (not
``monitor``) because the server runs it; ``lepton.monitor.retention`` re-exports it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from lepton.errors import ConfigError, LeptonError
from lepton.serve.sketches import fold_window

log = logging.getLogger("lepton.serve")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: Any) -> float | None:
    """``30d``, ``12h``, ``90m``, ``45s`` -> seconds; None when it is not one."""
    match = _DURATION.match(str(text).strip())
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


def retention_seconds(value: Any) -> float:
    """A retention period (``30d`` or seconds) -> seconds > 0, or a clear error."""
    seconds = (float(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
               else parse_duration(value))
    if seconds is None or not seconds > 0:
        raise ConfigError("Invalid log retention", expected="a duration such as 30d or 12h",
                          received=repr(value)[:80], fix="lepton serve --log-retention 30d")
    return seconds


def _reference(store: Any, model: str, version: int | None) -> dict[str, Any] | None:
    from lepton.artifact.manifest import read_manifest
    from lepton.registry import Registry

    if version is None:
        return None
    try:
        return read_manifest(Registry(store).get(model, version)["path"]).reference
    except LeptonError:
        return None


def sweep(store: Any, retention: str | float, *, now: float | None = None) -> dict[str, int]:
    """Fold then delete every prediction older than ``retention`` (``30d`` or seconds)."""
    from lepton.store import _monitor as sm

    before = (time.time() if now is None else now) - retention_seconds(retention)
    totals = {"expired": 0, "deleted": 0, "sketches": 0}
    references: dict[tuple[str, int | None], dict | None] = {}
    while True:
        rows = sm.expired_rows(store, before)
        if not rows:
            return totals
        groups: dict[tuple[str, int | None], list[dict]] = {}
        for row in rows:
            groups.setdefault((row["model"], row["version"]), []).append(row)
        sketches = []
        for (model, version), group in groups.items():
            if (model, version) not in references:
                references[(model, version)] = _reference(store, model, version)
            reference = references[(model, version)]
            folds = fold_window(reference, group) if reference else {}
            sketches.append({"model": model, "version": version,
                             "window_start": group[0]["created_at"],
                             "window_end": group[-1]["created_at"], "requests": len(group),
                             "errors": 0, "sketch": {"inputs": folds, "expired": True}})
        totals["sketches"] += sm.write_sketches(store, sketches)
        totals["expired"] += len(rows)
        totals["deleted"] += sm.delete_predictions(store, [r["id"] for r in rows])


class Periodic:
    """Runs ``task`` every ``period_s`` in a daemon thread until ``close``; a failure is
    logged and retried next period, never raised into the server."""

    def __init__(self, task: Callable[[], Any], period_s: float, name: str,
                 first_s: float | None = None) -> None:
        self.task, self.period_s = task, period_s
        self._first = period_s if first_s is None else first_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        wait = self._first
        while not self._stop.wait(wait):
            wait = self.period_s
            try:
                self.task()
            except Exception:  # noqa: BLE001 - background work must not stop serving
                log.exception("lepton serve: %s failed", self._thread.name)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def sweeper(store: Any, retention_s: float) -> Periodic:
    """The server's sweep thread: every tenth of the period, between 1 s and 1 h."""
    def run() -> None:
        totals = sweep(store, retention_s)
        if totals["expired"]:
            log.info("lepton serve: retention swept %d predictions (%d deleted)",
                     totals["expired"], totals["deleted"])

    return Periodic(run, min(max(retention_s / 10, 1.0), 3600.0), "lepton-retention")
