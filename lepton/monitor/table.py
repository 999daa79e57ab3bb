"""The monitor's result as a table a person reads: one row per window (``lepton monitor``
and ``lepton demo`` print the same one)."""

from __future__ import annotations

from typing import Any


def _prediction(window: dict[str, Any]) -> str:
    pred = window.get("prediction_drift") or {}
    p_value = pred.get("p_value")
    shown = "drift" if pred.get("drifted") else "none"
    if p_value is not None:
        shown += f" ({pred['method']} p{'<1e-4' if p_value < 1e-4 else f'={p_value:.2g}'})"
    return f"[red]{shown}[/red]" if pred.get("drifted") else shown


def _embedding(window: dict[str, Any]) -> str:
    e = window.get("embedding_drift") or {}
    if not e.get("method"):
        return "-"
    shown = f"MMD² {e['score']:.3f}, p={e['p_value']:.2g}"
    return f"[red]drift ({shown})[/red]" if e.get("drifted") else f"none ({shown})"


def _quality(window: dict[str, Any]) -> str:
    q = window.get("quality") or {}
    parts = [f"{name} {q[key]:.1%}" for key, name in (("accuracy", "accuracy"),
                                                      ("estimated_accuracy", "est. accuracy"))
             if q.get(key) is not None]
    return ", ".join(parts) or "-"


def windows_table(result: dict[str, Any], traffic: list[str] | None = None) -> Any:
    """A rich Table of ``monitor(...)``'s windows: rows, drifted inputs (test and score),
    prediction and embedding drift, accuracy on feedback or its label-free estimate."""
    from rich.table import Table

    table = Table(title=f"Monitoring {result['model']}:{result['version']} against its "
                        f"reference ({result['reference']})", title_justify="left")
    for column in ("window", *(["traffic"] if traffic else []), "rows", "drifted inputs",
                   "prediction drift", "embedding drift", "accuracy"):
        table.add_column(column)
    for i, window in enumerate(result["windows"]):
        label = [traffic[i] if i < len(traffic) else ""] if traffic else []
        if window.get("status") != "ok":
            table.add_row(str(i + 1), *label, "0", window.get("message", window["status"]),
                          "-", "-", "-")
            continue
        drift = window["drift"]
        inputs = [f for f in drift["features"] if f.get("kind") != "embedding"]
        drifted = [f"{f['feature']} ({f['method']} {f['score']:.2f})"
                   for f in inputs if f.get("drifted")]
        table.add_row(str(i + 1), *label, str(window["window"]["rows"]),
                      "[red]" + ", ".join(drifted) + "[/red]" if drifted
                      else f"[green]none[/green] of {sum(1 for f in inputs if f.get('method'))}",
                      _prediction(window), _embedding(window), _quality(window))
    return table
