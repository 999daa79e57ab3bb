"""Record training runs in the Lepton store and register the trained model.

The artifact on disk is the result of ``lepton train``; the store is its log. So a store that
cannot be opened (no write access, a database being migrated) costs a warning, not the run.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

from lepton.errors import LeptonError, LeptonWarning

_STORES: dict[tuple, Any] = {}


def _store():
    """One open store per workspace / database URL (the environment names them)."""
    key = (os.environ.get("LEPTON_HOME"), os.environ.get("LEPTON_DB_URL"), os.getcwd())
    if key not in _STORES:
        from lepton.store import Store

        _STORES[key] = Store.open()
    return _STORES[key]


def _safely(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (LeptonError, OSError, ImportError) as exc:
        warnings.warn(f"Could not {what} in the Lepton store: {exc}", LeptonWarning,
                      stacklevel=3)
    except Exception as exc:  # noqa: BLE001 - database drivers raise their own errors
        warnings.warn(f"Could not {what} in the Lepton store: {type(exc).__name__}: {exc}",
                      LeptonWarning, stacklevel=3)
    return None


def _finite(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def start_run(name: str, params: dict[str, Any]) -> str | None:
    return _safely("record the run", lambda: _store().start_run(safe_name(name), params))


def log_metrics(run_id: str | None, metrics: dict[str, Any], step: int) -> None:
    if run_id:
        _safely("log metrics", lambda: _store().log_metrics(run_id, _finite(metrics), step))


def end_run(run_id: str | None, metrics: dict[str, Any] | None,
            cost: dict[str, float] | None = None) -> None:
    """Log the final metrics and close the run (failed when ``metrics`` is None); ``cost``
    (``lepton.store.prices.training_cost``) goes in the run's ``cost_usd`` and, item by item,
    in its metrics."""
    if not run_id:
        return
    if metrics is not None:
        log_metrics(run_id, {f"test_{k}": v for k, v in metrics.items()}, 0)
    if cost is not None:
        log_metrics(run_id, cost, 0)
    _safely("close the run",
            lambda: _store().end_run(run_id, "finished" if metrics is not None else "failed",
                                     cost_usd=None if cost is None else cost["cost_usd"]))


def register(path: Path, name: str | None, run_id: str | None = None) -> dict | None:
    """Register the artifact under ``name`` (default: the output folder's name)."""
    def go():
        from lepton.registry import Registry

        return Registry(_store()).register(path, safe_name(name or Path(path).name),
                                           run_id=run_id)
    return _safely("register the model", go)


def safe_name(name: str) -> str:
    """A registry-safe name: letters, digits, dot, dash, underscore; starts alphanumeric."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-._") or "model"
    return cleaned[:128]
