"""The compression table as text: Markdown (saved, and printed by the CLI) and an HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = ("variant", "runtime", "size", "p50 b1", "rows/s b64", "metric", "verdict")


def cells(row: dict[str, Any], recommended: str) -> list[str]:
    """One row's cells, each number with its ratio to the original."""
    verdict = "rejected: " + row["rejected"] if row["rejected"] else (
        "recommended" if row["variant"] == recommended else "accepted")
    if row.get("registered"):
        verdict += f" ({row['registered']})"
    return [row["variant"], row["runtime"],
            f"{row['size_bytes'] / 1e6:.2f} MB ({row['size_ratio']:.2f}×)",
            f"{row['p50_ms_b1']:.3f} ms ({row['speed_b1']:.2f}×)",
            f"{row['rows_per_s_b64']:,.0f} ({row['speed_b64']:.2f}×)",
            f"{row['metric']:.2f} ({row['metric_delta']:+.2f})", verdict]


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# lepton compress: {doc['model']} on {doc['data']}", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in doc["variants"]:
        lines.append("| " + " | ".join(cells(row, doc["recommended"])) + " |")
    lines += ["", f"Recommended: **{doc['recommended']}**. Ratios are to the original "
              "(speed: higher is faster; metric: points, accuracy × 100 or R² × 100)."]
    lines += [f"- {note}" for note in doc.get("notes", [])]
    return "\n".join(lines) + "\n"


def html_report(out: Path, doc: dict[str, Any]) -> Path:
    """The table in the same self-contained HTML report ``lepton evaluate`` writes."""
    from lepton.evaluate.report import save_report

    metrics = {f"{r['variant']} {r['metric_name']}": r["metric"] for r in doc["variants"]}
    info: dict[str, Any] = {"model": doc["model"], "data": doc["data"],
                            "recommended": doc["recommended"]}
    for row in doc["variants"]:
        info[row["variant"]] = " · ".join(cells(row, doc["recommended"])[1:])
    for i, note in enumerate(doc.get("notes", [])):
        info[f"note {i + 1}"] = note
    return save_report(out, f"lepton compress: {doc['model']}", metrics, {}, info)
