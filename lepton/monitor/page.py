"""The monitor's self-contained HTML page: per-window drift, quality and latency, with plots
inline (the evaluation report's page and plot helpers, so both look alike)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lepton.atomic import atomic_write_bytes


def _drift_bars(report: dict[str, Any]) -> bytes | None:
    from lepton.evaluate.plots import _figure, _png

    features = [f for f in report["drift"]["features"]
                if f.get("method") and f.get("kind") != "embedding"][:40]
    if not features:
        return None
    fig, ax = _figure(7.0, max(2.5, 0.25 * len(features) + 1))
    scores = [f.get("psi", 0.0) for f in features]
    colors = ["#d63031" if f["drifted"] else "#3867d6" for f in features]
    ax.barh([f["feature"] for f in features], scores, color=colors)
    ax.axvline(0.1, color="#59617a", linestyle="--", linewidth=1)
    ax.set_xlabel("PSI (red: drifted by its test)")
    return _png(fig)


def _timeline(result: dict[str, Any]) -> bytes | None:
    from lepton.evaluate.plots import _figure, _png

    windows = [w for w in result["windows"] if w["status"] == "ok"]
    if len(windows) < 2:
        return None
    fig, ax = _figure(7.0, 3.5)
    x = np.arange(len(windows))
    ax.plot(x, [w["drift"]["share"] for w in windows], marker="o", label="share drifted")
    acc = [w["quality"].get("accuracy") for w in windows]
    if any(a is not None for a in acc):
        ax.plot(x, [np.nan if a is None else a for a in acc], marker="s", label="accuracy")
    est = [w["quality"].get("estimated_accuracy") for w in windows]
    if any(e is not None for e in est):
        ax.plot(x, [np.nan if e is None else e for e in est], linestyle="--",
                label="estimated accuracy")
    emb = [(w.get("embedding_drift") or {}).get("p_value") for w in windows]
    if any(e is not None for e in emb):
        ax.plot(x, [np.nan if e is None else e for e in emb], marker="^",
                label="embedding MMD p-value")
    ax.set_xlabel("window")
    ax.set_ylim(0, 1.05)
    ax.legend()
    return _png(fig)


def _embedding_line(report: dict[str, Any]) -> str:
    """One window's embedding drift in words: MMD², p-value, rows, or why there is none."""
    e = report.get("embedding_drift") or {}
    if not e.get("method"):
        return e.get("status", "not computed")
    return (f"MMD² {e['score']:.4g}, p = {e['p_value']:.3f} on {e['rows']} rows"
            f" ({'drifted' if e['drifted'] else 'no drift'}; drift is p < {e['threshold']}"
            f" and MMD² ≥ {e.get('min_score', 0)})")


def render_page(result: dict[str, Any]) -> str:
    from lepton.evaluate.report import render_html

    figures: dict[str, bytes] = {}
    timeline = _timeline(result)
    if timeline:
        figures["over windows"] = timeline
    last = next((w for w in reversed(result["windows"]) if w["status"] == "ok"), None)
    if last is not None:
        bars = _drift_bars(last)
        if bars:
            figures["drift in the last window"] = bars
    summary = result["summary"]
    info = {"model": f"{result['model']}:{result['version']}", "reference": result["reference"],
            "windows": summary["windows"], "rows": summary["rows"],
            "drifted features": ", ".join(summary["drifted"]) or "none",
            "windows with drift": summary["alarm_windows"],
            "windows without traffic": summary["no_traffic_windows"]}
    for i, w in enumerate(result["windows"]):
        q = w.get("quality") or {}
        info[f"window {i + 1}"] = (
            f"{w['window']['start_time']} .. {w['window']['end_time']}: {w['window']['rows']} "
            f"rows, {w['status']}; drifted: {', '.join(w['drift']['drifted']) or 'none'}"
            + (f"; accuracy {q['accuracy']:.3f}" if "accuracy" in q else "")
            + (f"; estimated {q['estimated_accuracy']:.3f}" if "estimated_accuracy" in q else "")
            + (f"; embedding drift: {_embedding_line(w)}" if w.get("embedding_drift") else ""))
    metrics = {}
    if last is not None:
        metrics = {f"{f['feature']} ({f['method']})": f["score"]
                   for f in last["drift"]["features"] if f.get("method")}
    return render_html(f"Lepton monitor: {result['model']}:{result['version']}", metrics,
                       figures, info)


def save_page(result: dict[str, Any], out: str | Path) -> Path:
    out = Path(out)
    atomic_write_bytes(out, render_page(result).encode())
    return out
