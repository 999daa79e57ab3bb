"""``lepton monitor`` as a function: a registered model version, its reference, the log ->
one report per window (input drift, prediction drift, embedding drift, quality, latency),
stored. Embedding drift (``lepton.monitor.embedding``: MMD of penultimate-layer vectors,
image and text models) needs the inputs kept (``--log-inputs``); a window without them, or
a reference without embeddings, says so in ``report["embedding_drift"]["status"]``.

    from lepton.monitor import monitor
    result = monitor("fraud@production", window="1h", since="24h")
    result["summary"]["drifted"]          # features that drifted in any window
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lepton.errors import ConfigError, NotFoundError
from lepton.monitor.drift import feature_drift, summarize
from lepton.monitor.embedding import load_embedder, window_embedding_drift
from lepton.monitor.window import fold_window, latency, outputs_of, prediction_fold, quality
from lepton.serve.retention import parse_duration
from lepton.sketch.folding import feature_sketches, merge_folds


def parse_since(since: Any, now: float | None = None) -> float | None:
    """``24h`` (relative), ISO 8601, or epoch seconds -> epoch seconds."""
    if since is None or isinstance(since, (int, float)):
        return since
    now = time.time() if now is None else now
    duration = parse_duration(since)
    if duration is not None:
        return now - duration
    try:
        when = datetime.fromisoformat(str(since).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError("Invalid --since", expected="a duration (24h, 30m, 7d), an ISO time "
                          "or epoch seconds", received=repr(since)) from None
    return (when if when.tzinfo else when.astimezone()).timestamp()


def parse_window(window: Any) -> tuple[str, float] | None:
    """``500`` (rows per window) or ``1h`` (a duration) -> ("rows", 500) / ("time", 3600)."""
    if window is None:
        return None
    if isinstance(window, int) or str(window).isdigit():
        if int(window) < 1:
            raise ConfigError("Invalid --window", expected="rows >= 1", received=window)
        return "rows", int(window)
    duration = parse_duration(window)
    if duration is None or duration <= 0:
        raise ConfigError("Invalid --window", expected="a row count (500) or a duration "
                          "(1h, 30m)", received=repr(window))
    return "time", duration


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(
        timespec="seconds")


def load_reference(record: dict[str, Any], reference: str | Path | dict | None
                   ) -> tuple[dict[str, Any], str]:
    """The reference to compare with, and where it came from. A profile file that names
    another model version is refused; a data file is profiled through the model."""
    from lepton.artifact.manifest import read_manifest

    name, version = record["name"], record["version"]
    if reference is None:
        ref = read_manifest(record["path"]).reference
        if ref is None:
            raise NotFoundError(f"Model '{name}' version {version} has no reference profile",
                                fix="pass --reference DATA (the training data) to profile "
                                    "it, or retrain it with a recent lepton train")
        return ref, "artifact"
    if isinstance(reference, dict):
        ref, source = reference, "given"
    elif str(reference).endswith(".json"):
        ref = json.loads(Path(reference).read_text())
        ref, source = ref.get("reference", ref), str(reference)
    else:
        from lepton.monitor.profile import profile_data

        return profile_data(record, Path(reference)), str(reference)
    owner = ref.get("model") or {}
    if owner and (owner.get("name"), owner.get("version")) != (name, version):
        raise ConfigError("The reference profile describes another model version",
                          expected=f"{name}:{version}",
                          received=f"{owner.get('name')}:{owner.get('version')}",
                          fix=f"profile {name}:{version} with --reference DATA")
    return ref, source


def _windows(rows: list[dict], spec: tuple[str, float] | None, since: float | None,
             now: float) -> list[tuple[float | None, float, list[dict]]]:
    if spec is None:
        return [(since, now, rows)]
    kind, size = spec
    if kind == "rows":
        n = int(size)
        chunks = [rows[i:i + n] for i in range(0, len(rows), n)] or [[]]
        return [(c[0]["created_at"] if c else since, c[-1]["created_at"] if c else now, c)
                for c in chunks]
    start = since if since is not None else (rows[0]["created_at"] if rows else now - size)
    out, i = [], 0
    while start < now:
        end = min(start + size, now)
        chunk = []
        while i < len(rows) and rows[i]["created_at"] <= end:
            chunk.append(rows[i])
            i += 1
        out.append((start, end, chunk))
        start = end
    return out or [(since, now, [])]


def window_report(record: dict[str, Any], reference: dict[str, Any], rows: list[dict],
                  start: float | None, end: float, sketches: list[dict], unknown: int,
                  embedder: Any = None) -> dict[str, Any]:
    """The report of one window (see the module docstring); ``embedder`` is the model
    ``load_embedder`` gave (loaded here when the reference has embeddings and it is None)."""
    name, version = record["name"], record["version"]
    labels, task = record.get("labels") or [], record.get("task")
    window = {"start": start, "end": end, "start_time": _iso(start), "end_time": _iso(end),
              "rows": len(rows)}
    report: dict[str, Any] = {"model": name, "version": version, "window": window,
                              "unknown_feedback": unknown}
    served = [s for s in sketches if (start is None or s["window_end"] > start)
              and s["window_end"] <= end]
    requests = sum(s["requests"] for s in served)
    errors = sum(s["errors"] for s in served)
    report["errors"] = ({"requests": requests, "errors": errors,
                         "error_rate": errors / requests if requests else 0.0}
                        if served else {"status": "no server sketches in this window"})
    if not rows and not requests:
        report["status"] = "no traffic"
        report["message"] = (f"no predictions were logged for {name}:{version} between "
                             f"{window['start_time'] or 'the start'} and {window['end_time']}")
        report["drift"] = summarize([])
        return report
    report["status"] = "ok"
    folds = fold_window(reference, rows)
    sources = ["logged inputs"] if folds else []
    # expired rows live on only in their sketches: always counted; live sketches describe
    # rows still in the log, so they count only where those rows kept no inputs
    live_ok = not sources
    for s in served:
        if (s["sketch"].get("expired") or live_ok) and s["sketch"].get("inputs"):
            folds = merge_folds(folds, s["sketch"]["inputs"])
            if "server sketches" not in sources:
                sources.append("server sketches")
    source = " + ".join(sources) or "none"
    report["input_source"] = source
    features = []
    for fname, ref in feature_sketches(reference).items():
        if fname in folds:
            features.extend(feature_drift(fname, ref, folds[fname]))
    part = reference.get("embeddings")
    if part and embedder is None:
        embedder = load_embedder(record.get("path"))
    report["embedding_drift"] = window_embedding_drift(part, embedder, rows)
    if report["embedding_drift"].get("method"):
        features.append(report["embedding_drift"])
    report["drift"] = summarize(features)
    if source == "none":
        report["drift"]["status"] = ("no inputs to compare: serve with --log-inputs, or let "
                                     "the server write its sketches")
    preds, proba = outputs_of(rows, labels, task)
    pf = prediction_fold(reference, preds)
    report["prediction_drift"] = (feature_drift("prediction", reference["predictions"], pf)[0]
                                  if pf is not None else {"status": "no reference predictions"})
    report["quality"] = quality(rows, preds, proba, labels, task)
    report["latency"] = latency(rows)
    return report


def monitor(model: str, *, since: Any = None, window: Any = None,
            reference: str | Path | dict | None = None, store: Any = None,
            save: bool = True) -> dict[str, Any]:
    """Monitor ``model`` (``name``, ``name:3``, ``name@production``); see ``lepton monitor``."""
    from lepton.registry import Registry
    from lepton.store import Store
    from lepton.store import _monitor as sm

    store = store if store is not None else Store.open()
    record = Registry(store).resolve(model)
    ref, source = load_reference(record, reference)
    now = time.time()
    since_ts = parse_since(since, now)
    spec = parse_window(window)
    from lepton.store._crypt import decryptor

    rows = list(sm.window_rows(store, record["name"], version=record["version"],
                               since=since_ts, decrypt=decryptor()))
    sketches = sm.read_sketches(store, record["name"], version=record["version"],
                                since=since_ts)
    reports = []
    embedder = load_embedder(record["path"]) if ref.get("embeddings") else None
    for start, end, chunk in _windows(rows, spec, since_ts, now):
        unknown = sm.count_unknown_feedback(store, start, end)
        report = window_report(record, ref, chunk, start, end, sketches, unknown,
                               embedder=embedder)
        report["reference"] = source
        if save:
            report["id"] = sm.save_report(store, report)
        reports.append(report)
    drifted = sorted({f for r in reports for f in r["drift"]["drifted"]})
    return {"model": record["name"], "version": record["version"], "reference": source,
            "windows": reports, "summary": {
                "windows": len(reports), "rows": len(rows), "drifted": drifted,
                "alarm_windows": sum(1 for r in reports if r["drift"]["drifted"]),
                "no_traffic_windows": sum(1 for r in reports if r["status"] == "no traffic")}}
